"""`hrm-edge adapt`: unseen ARC tasks learned on the device from their demonstration pairs alone.

adapt sits above train (it runs the trainer's step, loss, optimizers and schedule on examples held in
memory) and above export and runtime (the bundle's puzzle table updated in place, engines refitted);
nothing below imports it.
"""
