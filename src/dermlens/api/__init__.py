"""The REST API and web app adapter: FastAPI routes over the serving core (`dermlens.inference`,
`dermlens.knowledge`). Start it with ``dermlens serve``; build it in code with `create_app`."""
