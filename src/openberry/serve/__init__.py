"""An OpenAI-compatible HTTP server over any `openberry.models.Policy`.

Import `create_app` from `openberry.serve.app` (it imports FastAPI); this package itself is light.
"""

__all__: list[str] = []
