"""Admin forms: a credential form that never renders a secret, and the import form."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from common.masking import mask
from tokens.models import Credential, Kind

SECRET_FIELDS = ("access_token", "refresh_token", "api_key")
MAX_IMPORT_BYTES = 5 * 1024 * 1024


class MaskedSecretInput(forms.TextInput):
    """Shows the stored secret masked (as a placeholder), never its value; typing replaces it."""

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        shown = mask(str(value)) if value else ""
        placeholder = f"{shown} (leave empty to keep)" if shown else "not set"
        attrs = {**(attrs or {}), "placeholder": placeholder, "autocomplete": "off", "spellcheck": "false"}
        return super().get_context(name, None, attrs)


class BlankTextarea(forms.Textarea):
    """Pasted secrets are not echoed back when the form is shown again with an error."""

    def format_value(self, value: Any) -> None:
        return None


class SecretField(forms.CharField):
    widget = MaskedSecretInput

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("max_length", None)
        super().__init__(**{**kwargs, "required": False})
        self.help_text = "Type a new value to replace the stored one; leave empty to keep it."

    def has_changed(self, initial: Any, data: Any) -> bool:
        # An empty submission keeps the stored secret, so it is not a change (nor a history entry).
        return bool(data) and data.strip() != (initial or "")


class NameListField(forms.CharField):
    """A list of names typed one a line or comma separated, for a JSON list field such as `model_names`."""

    def __init__(self, **kwargs: Any) -> None:
        for name in ("encoder", "decoder"):  # what a JSONField hands its form field
            kwargs.pop(name, None)
        super().__init__(**{"widget": forms.Textarea(attrs={"rows": 4, "cols": 60}), **kwargs})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:
        names = (name.strip() for name in re.split(r"[,\n]", super().to_python(value)))
        return list(dict.fromkeys(name for name in names if name))


class CredentialForm(forms.ModelForm):
    class Meta:
        model = Credential
        fields = (
            *("kind", "label", *SECRET_FIELDS, "account_id", "base_url", "wire_api", "model_names", "max_concurrency"),
            *("status", "cooldown_until"),
        )
        field_classes = {**dict.fromkeys(SECRET_FIELDS, SecretField), "model_names": NameListField}
        widgets = dict.fromkeys(SECRET_FIELDS, MaskedSecretInput)
        help_texts = {
            "model_names": "One a line or comma separated; empty means what the upstream lists (or any model)."
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in SECRET_FIELDS:
            if name in self.fields and not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name)
        self._check_complete(cleaned)
        self._check_unique(cleaned)
        return cleaned

    def _check_complete(self, cleaned: dict[str, Any]) -> None:
        if cleaned.get("kind") == Kind.OPENAI and not (cleaned.get("base_url") and cleaned.get("api_key")):
            raise forms.ValidationError("An OpenAI-compatible key needs a base URL and an API key.")
        if cleaned.get("kind") == Kind.CHATGPT and not (cleaned.get("access_token") or cleaned.get("refresh_token")):
            raise forms.ValidationError("A ChatGPT account needs an AccessToken or a RefreshToken.")
        if cleaned.get("kind") == Kind.CODEX and not cleaned.get("refresh_token"):
            raise forms.ValidationError("A codex account needs its RefreshToken.")

    def _check_unique(self, cleaned: dict[str, Any]) -> None:
        names = ("kind", "account_id", "base_url", *SECRET_FIELDS)
        probe = Credential(**{name: cleaned.get(name) or "" for name in names})
        twin = Credential.objects.filter(fingerprint=probe.compute_fingerprint()).exclude(pk=self.instance.pk).first()
        if twin is not None:
            raise forms.ValidationError(f"This credential is already stored (#{twin.pk}).")


class ImportForm(forms.Form):
    text = forms.CharField(
        label="Paste",
        required=False,
        strip=False,
        widget=BlankTextarea(attrs={"rows": 12, "cols": 100, "spellcheck": "false", "autocomplete": "off"}),
        help_text="One a line: token[,ChatGPT-Account-ID], codex <RefreshToken>[,ChatGPT-Account-ID] or "
        "openai <base_url> <api_key> [model,model,...] [api=responses] (api=responses: the server also speaks "
        "/responses); a line starting with # is a comment. "
        "Or the Codex CLI's auth.json, whole.",
    )
    file = forms.FileField(label="Or upload a text file (or auth.json)", required=False)

    def clean_file(self) -> str:
        upload: UploadedFile | None = self.cleaned_data.get("file")
        if upload is None:
            return ""
        if upload.size and upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB.")
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text.") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.has_error("file") and bool(cleaned.get("text", "").strip()) == bool(cleaned.get("file")):
            raise forms.ValidationError("Paste text or upload a file (one of the two).")
        return cleaned

    @property
    def lines(self) -> str:
        return self.cleaned_data["text"] or self.cleaned_data["file"]
