"""`hrm-edge serve`: the puzzle service on the device (an ASGI app on uvicorn) and its client.

serve sits above solve (it plans, inverts and votes with solve's own functions) and above runtime
(whose scheduler interleaves every request's puzzles in the slots); nothing below imports it.
"""
