from airoad.cli import app

app()
