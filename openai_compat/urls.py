from __future__ import annotations

from django.urls import path

from openai_compat import files, views
from openai_compat.responses import views as responses

urlpatterns = [
    path("chat/completions", views.chat_completions),
    path("models", views.list_models),
    path("models/<path:model>", views.retrieve_model),
    path("files/<str:token>", files.download, name="file_link"),
    path("responses", responses.create),
    path("responses/<str:response_id>", responses.retrieve_or_delete),
]
