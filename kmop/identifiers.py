"""Belgian identifiers: enterprise numbers (KBO/BCE) and IBANs, check digits included.

Sources are in docs/domain.md, section B: an enterprise number is 10 digits starting
with 0 or 1 whose last two digits are 97 - (first eight mod 97); an IBAN passes ISO 7064 mod 97-10.
"""

from __future__ import annotations

import re

_ENTERPRISE_SEPARATORS = re.compile(r"[\s.\-]")


class InvalidIdentifier(ValueError):
    """A value that is not a valid identifier of its kind; the message says why."""


def normalise_enterprise_number(value: str) -> str:
    """The 10-digit form of an enterprise number, or InvalidIdentifier with the reason.

    Accepts ``0403.170.701``, ``0403170701``, ``BE0403170701`` and the old 9-digit form.
    """
    if not isinstance(value, str):
        raise InvalidIdentifier("must be a string")
    digits = _ENTERPRISE_SEPARATORS.sub("", value.strip())
    if digits[:2].upper() == "BE":
        digits = digits[2:]
    if not digits.isdigit() or not digits.isascii():
        raise InvalidIdentifier("must contain only digits (optionally BE and separators)")
    if len(digits) == 9:
        digits = "0" + digits
    if len(digits) != 10:
        raise InvalidIdentifier("must have 10 digits")
    if digits[0] not in "01":
        raise InvalidIdentifier("must start with 0 or 1 (2..8 are establishment units)")
    if 97 - int(digits[:8]) % 97 != int(digits[8:]):
        raise InvalidIdentifier("check digits do not match (97 - first eight digits mod 97)")
    return digits


def format_enterprise_number(value: str) -> str:
    """``0403170701`` -> ``0403.170.701``."""
    digits = normalise_enterprise_number(value)
    return f"{digits[:4]}.{digits[4:7]}.{digits[7:]}"


def normalise_iban(value: str) -> str:
    if not isinstance(value, str):
        raise InvalidIdentifier("must be a string")
    iban = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", iban):
        raise InvalidIdentifier("must be a country code, two check digits and 11-30 letters or digits")
    if iban.startswith("BE") and len(iban) != 16:
        raise InvalidIdentifier("a Belgian IBAN has 16 characters")
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    if int(number) % 97 != 1:
        raise InvalidIdentifier("check digits do not match (ISO 7064 mod 97-10)")
    if iban.startswith("BE"):
        account = iban[4:]
        check = int(account[:10]) % 97 or 97
        if check != int(account[10:]):
            raise InvalidIdentifier("Belgian account check digits do not match")
    return iban


def format_iban(value: str) -> str:
    iban = normalise_iban(value)
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


BIC_PATTERN = re.compile(r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
