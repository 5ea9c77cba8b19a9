# One record per operation key: the Idempotency-Keys of API requests and the ids of messages
# (until now IdempotencyRecord and ReceivedMessage) become OperationKey rows. The responses of
# API requests move to api.IdempotentResponse (api 0001); 0011 drops the old tables.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

COPY_KEYS = """
INSERT INTO engine_operationkey (user_id, scope, key, fingerprint, outcome, created_at)
SELECT user_id, scope, key, fingerprint, NULL, created_at
  FROM engine_idempotencyrecord WHERE status_code IS NOT NULL;
INSERT INTO engine_operationkey (user_id, scope, key, fingerprint, outcome, created_at)
SELECT NULL, 'message', message_id, '', response, created_at FROM engine_receivedmessage;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('engine', '0009_service_job_unqueued_since'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='OperationKey',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('scope', models.CharField(help_text="What the key is for: 'message', or a request's method and path.", max_length=300)),
                ('key', models.CharField(max_length=255)),
                ('fingerprint', models.CharField(blank=True, help_text='SHA-256 of the request; another request with the key is refused. Empty: not compared (a message id).', max_length=64)),
                ('outcome', models.JSONField(blank=True, help_text='What the operation did, given again to duplicates.', null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('user', models.ForeignKey(blank=True, help_text='Whose key it is; empty for message ids, which are global.', null=True, on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.AddIndex(
            model_name='operationkey',
            index=models.Index(fields=['created_at'], name='operation_key_created'),
        ),
        migrations.AddConstraint(
            model_name='operationkey',
            constraint=models.UniqueConstraint(fields=('user', 'scope', 'key'), name='operation_key_unique', nulls_distinct=False),
        ),
        migrations.RunSQL(COPY_KEYS, reverse_sql=migrations.RunSQL.noop),
    ]
