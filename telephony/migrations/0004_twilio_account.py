"""One TwilioAccount per Twilio Account SID, holding the auth token that its numbers used to
each keep a copy of. Where numbers of one account held different tokens (one was imported
after a rotation), the most recently imported number's token is kept."""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

import nixflex.encryption


def link_numbers_to_accounts(apps: Any, schema_editor: Any) -> None:
    PhoneNumber = apps.get_model("telephony", "PhoneNumber")
    TwilioAccount = apps.get_model("telephony", "TwilioAccount")
    accounts: dict[str, Any] = {}
    for number in PhoneNumber.objects.order_by("-created_at", "-id"):
        account = accounts.get(number.twilio_account_sid)
        if account is None:
            account = accounts[number.twilio_account_sid] = TwilioAccount.objects.create(
                account_sid=number.twilio_account_sid,
                auth_token=number.twilio_auth_token,
                verified_at=number.created_at,
            )
        number.twilio_account = account
        number.save(update_fields=["twilio_account"])


class Migration(migrations.Migration):
    dependencies = [
        ("telephony", "0003_reencrypt_tokens_with_field_keys"),
    ]

    operations = [
        migrations.CreateModel(
            name="TwilioAccount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("account_sid", models.CharField(max_length=34, unique=True)),
                ("auth_token", nixflex.encryption.EncryptedTextField()),
                ("friendly_name", models.CharField(blank=True, default="", max_length=200)),
                ("verified_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="phonenumber",
            name="twilio_account",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="phone_numbers",
                to="telephony.twilioaccount",
            ),
        ),
        migrations.RunPython(link_numbers_to_accounts),
    ]
