"""The Responses API (`POST /v1/responses`) as a front end on the chat pipeline."""
