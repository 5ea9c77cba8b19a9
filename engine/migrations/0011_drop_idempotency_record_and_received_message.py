# Their rows live on as engine.OperationKey (0010) and api.IdempotentResponse (api 0001).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('engine', '0010_operation_key'),
        ('api', '0001_initial'),
    ]

    operations = [
        migrations.DeleteModel(
            name='ReceivedMessage',
        ),
        migrations.DeleteModel(
            name='IdempotencyRecord',
        ),
    ]
