from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from destinations import crypto
from destinations.models import Destination

pytestmark = pytest.mark.django_db

TOKEN = "tok-plaintext-never-stored-0123456789"


def raw_token(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token FROM destinations_destination WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_tokens_are_encrypted_at_rest_and_hidden_from_repr(settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    destination = Destination.objects.create(name="d", advertiser_id="1", access_token=TOKEN)
    assert TOKEN not in raw_token(destination.pk)
    fresh = Destination.objects.get(pk=destination.pk)
    assert fresh.access_token == TOKEN
    assert TOKEN not in repr(fresh.access_token) and TOKEN not in repr(fresh)


def test_rotation_re_encrypts_with_the_newest_key_so_the_old_one_can_go(settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    destination = Destination.objects.create(name="d", advertiser_id="1", access_token=TOKEN)
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_encryption_keys")
    assert "1 destination" in capsys.readouterr().out
    settings.FIELD_ENCRYPTION_KEYS = [new]
    assert Destination.objects.get(pk=destination.pk).access_token == TOKEN
    assert Fernet(new.encode()).decrypt(raw_token(destination.pk).encode()).decode() == TOKEN


def test_rotation_refuses_when_a_value_cannot_be_decrypted(settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    Destination.objects.create(name="d", advertiser_id="1", access_token=TOKEN)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_encryption_keys")


def test_a_malformed_key_is_a_clear_configuration_error(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-key"]
    with pytest.raises(crypto.ConfigError, match="entry 1 is not a Fernet key"):
        crypto.encrypt("x")
