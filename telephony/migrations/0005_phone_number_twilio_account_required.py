"""Numbers keep their Twilio credentials only through their TwilioAccount (see 0004)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("telephony", "0004_twilio_account"),
    ]

    operations = [
        migrations.AlterField(
            model_name="phonenumber",
            name="twilio_account",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="phone_numbers", to="telephony.twilioaccount"
            ),
        ),
        migrations.RemoveField(
            model_name="phonenumber",
            name="twilio_account_sid",
        ),
        migrations.RemoveField(
            model_name="phonenumber",
            name="twilio_auth_token",
        ),
    ]
