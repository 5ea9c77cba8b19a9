# The stored body becomes the JSON text DRF rendered (JSONB reordered its keys): Postgres casts
# the JSONB of earlier rows to their text, and an absent body becomes "".

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('api', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='idempotentresponse',
            name='body',
            field=models.TextField(blank=True, null=True),
        ),
        migrations.RunSQL(
            "UPDATE api_idempotentresponse SET body = '' WHERE body IS NULL;",
            reverse_sql="UPDATE api_idempotentresponse SET body = NULL WHERE body = '';",
        ),
        migrations.AlterField(
            model_name='idempotentresponse',
            name='body',
            field=models.TextField(blank=True),
        ),
    ]
