"""Read models the API builds itself from the domain events (`pv.evt.>`): analytics and the
idea box. `analytics.py` is the pure core (event → one idempotent step), `store.py` the Redis
side (Lua steps, reads), `projector.py` the durable consumer run by the API's lifespan."""
