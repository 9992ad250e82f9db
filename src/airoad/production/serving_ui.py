"""The optional Gradio demo page of `airoad serve MODEL --ui`, mounted at /ui beside the API.

Offline by construction: analytics off (the environment variable must be set before gradio is
first imported), the hub offline, system fonts instead of the theme's Google Fonts, no run
history (it offers uploads to a hub bucket), no MCP server. The page calls the loaded model
directly, not through /predict: it is a demo for the person running the server, and is locked
with the same API keys (any user name, the key as password).
"""

from __future__ import annotations

import os
from typing import Any

from airoad.errors import AiroadError

UI_PATH = "/ui"


def import_gradio():
    """gradio with its analytics off, or one line saying how to install the extra."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio
    except ImportError:
        raise AiroadError(
            "the --ui demo page needs gradio: run `pip install airoad[ui]` (or serve without --ui)"
        ) from None
    return gradio


def _classifier_page(gr, predictor, title: str):
    def classify(text: str) -> dict[str, float]:
        if not text.strip():
            return {}
        probs = predictor.predict_proba([text])[0]
        return {label: float(p) for label, p in zip(predictor.labels, probs)}

    return gr.Interface(
        classify,
        gr.Textbox(lines=4, label="review"),
        gr.Label(label="prediction"),
        title=title,
        flagging_mode="never",
    )


def mount_ui(app: Any, parts: Any, lab_id: str, keys: list[str]) -> Any:
    """Mount the demo page of the served classifier at /ui."""
    gr = import_gradio()
    page = _classifier_page(gr, parts.predictor, f"airoad: {lab_id}")
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )
    allowed = set(keys)
    return gr.mount_gradio_app(
        app,
        page,
        path=UI_PATH,
        auth=lambda _user, password: password in allowed,
        auth_message="Sign in with any user name and the server's API key as password.",
        footer_links=["api"],
        run_history=False,
        ssr_mode=False,
        mcp_server=False,
        theme=theme,
    )
