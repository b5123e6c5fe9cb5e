"""aiohttp front end: app factory, middlewares, the actor bridge, auth, metrics, gateway."""
