"""clip-web server: the FastAPI app that hosts the pages, and the `clip-web` CLI."""
