"""The admin's login form, throttled by username and by client address (see `tokens.throttle`).

The admin guards every credential, so password guessing is slowed down as the chat login's token
guessing is. A locked-out attempt is refused before the password is checked.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from tokens.throttle import Throttle, by_address, by_username, client_address

ADMIN_LOGIN = Throttle("admin-login")


class ThrottledLoginForm(AdminAuthenticationForm):
    def clean(self) -> dict[str, Any]:
        subjects = (by_username(self.cleaned_data.get("username") or ""), by_address(client_address(self.request)))
        wait = ADMIN_LOGIN.locked_for(*subjects)
        if wait:
            raise ValidationError(f"Too many failed attempts. Try again in {wait} s.", code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError:
            ADMIN_LOGIN.record_failure(*subjects)
            raise
        if self.get_user() is not None:
            ADMIN_LOGIN.forget(*subjects)
        return cleaned
