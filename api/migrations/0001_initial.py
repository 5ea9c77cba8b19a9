# The stored responses of requests with an Idempotency-Key, until now on
# engine.IdempotencyRecord, keyed by the engine's OperationKey (engine 0010 copied the keys).

import django.db.models.deletion
from django.db import migrations, models

COPY_RESPONSES = """
INSERT INTO api_idempotentresponse (operation_id, status_code, body)
SELECT operation_key.id, record.status_code, record.response
  FROM engine_idempotencyrecord record
  JOIN engine_operationkey operation_key
    ON operation_key.user_id = record.user_id AND operation_key.scope = record.scope
   AND operation_key.key = record.key
 WHERE record.status_code IS NOT NULL;
"""


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('engine', '0010_operation_key'),
    ]

    operations = [
        migrations.CreateModel(
            name='IdempotentResponse',
            fields=[
                ('operation', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='response', serialize=False, to='engine.operationkey')),
                ('status_code', models.PositiveSmallIntegerField()),
                ('body', models.JSONField(blank=True, null=True)),
            ],
        ),
        migrations.RunSQL(COPY_RESPONSES, reverse_sql=migrations.RunSQL.noop),
    ]
