from __future__ import annotations

from django.urls import path

from mirror import api, views

urlpatterns = [
    path("", views.index, name="landing"),
    path("login", views.login, name="mirror-login"),
    path("logout", views.logout, name="mirror-logout"),
    path("chat/api/models", api.models, name="mirror-models"),
    path("chat/api/conversations", api.conversations, name="mirror-conversations"),
    path("chat/api/conversations/<str:conversation_id>", api.conversation, name="mirror-conversation"),
    path("chat/api/conversations/<str:conversation_id>/send", api.send, name="mirror-send"),
]
