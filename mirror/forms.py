from __future__ import annotations

import secrets

from django import forms

from mirror.models import SeedToken


class LoginForm(forms.Form):
    # A password input that never renders the value back: a refused token is not echoed into the page.
    token = forms.CharField(
        label="Token",
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "autofocus": True, "spellcheck": "false"}),
    )


class SeedTokenCreationForm(forms.ModelForm):
    token = forms.CharField(
        required=False,
        strip=True,
        min_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 50}),
        help_text="Leave empty to generate one. It is shown once, then only its fingerprint is kept.",
    )

    class Meta:
        model = SeedToken
        fields = ("label",)

    def clean_token(self) -> str:
        token = self.cleaned_data["token"] or secrets.token_urlsafe(24)
        if SeedToken.objects.matching(token).exists():
            raise forms.ValidationError("This seed token exists already.")
        return token

    def save(self, commit: bool = True) -> SeedToken:
        self.instance.set_token(self.cleaned_data["token"])
        self.instance.plain_token = self.cleaned_data["token"]  # for the admin's one-time display only
        return super().save(commit)
