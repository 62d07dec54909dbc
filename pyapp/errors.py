"""Typed errors with messages a page can show to a person as they are."""


class ClipWebError(Exception):
    """Base class: every error pyapp raises on bad input is one of these."""

    code = "clip_web_error"

    def to_dict(self) -> dict:
        return {"code": self.code, "message": str(self)}


class ImageDecodeError(ClipWebError):
    """The bytes are not an image Pillow can open (empty, truncated, SVG, text...)."""

    code = "image_decode_error"


class ImageTooLargeError(ClipWebError):
    """The image declares more pixels than MAX_IMAGE_PIXELS; refused before decoding."""

    code = "image_too_large"


class TextInputError(ClipWebError):
    """Text input of the wrong type, or too long with truncate=False."""

    code = "text_input_error"


class VocabError(ClipWebError):
    """The BPE vocab file is missing or not the expected one."""

    code = "vocab_error"
