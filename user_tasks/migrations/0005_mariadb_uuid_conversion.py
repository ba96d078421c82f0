"""
On MariaDB, store both uuid columns in MariaDB's native ``uuid`` type.

Django 5.0+ maps UUIDField to MariaDB's native ``uuid`` type (MariaDB 10.7+), while
tables created earlier hold ``char(32)``.  This converts existing columns so Django's
idea of the column matches the database.  As upstream's migration does, it converts on
every MariaDB that has the type (10.7+), whatever the Django version: Django 4.2 reads
and writes a native uuid column too, and a later move to Django 5 then needs nothing.
Nothing happens on other databases or older MariaDB.  The model state is unchanged.
"""
from django.db import migrations

TABLES = ('user_tasks_usertaskstatus', 'user_tasks_usertaskartifact')


def _uses_native_mariadb_uuid(schema_editor):
    connection = schema_editor.connection
    # Not features.has_native_uuid_field: Django 4.2 lacks it, and upstream converts there too.
    return connection.vendor == 'mysql' and connection.mysql_is_mariadb and connection.mysql_version >= (10, 7)


def _column_type(schema_editor, table):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            'SELECT data_type FROM information_schema.columns '
            'WHERE table_schema = DATABASE() AND table_name = %s AND column_name = %s',
            [table, 'uuid'],
        )
        row = cursor.fetchone()
    return row[0].lower() if row else None


def to_native_uuid(apps, schema_editor):
    if not _uses_native_mariadb_uuid(schema_editor):
        return
    for table in TABLES:
        if _column_type(schema_editor, table) != 'uuid':
            schema_editor.execute(f'ALTER TABLE `{table}` MODIFY `uuid` uuid NOT NULL')


def to_char32(apps, schema_editor):
    if not _uses_native_mariadb_uuid(schema_editor):
        return
    for table in TABLES:
        if _column_type(schema_editor, table) == 'uuid':
            # Native uuids print with dashes; the char(32) form Django used has none.
            schema_editor.execute(f'ALTER TABLE `{table}` MODIFY `uuid` varchar(36) NOT NULL')
            schema_editor.execute(f"UPDATE `{table}` SET `uuid` = REPLACE(`uuid`, '-', '')")
            schema_editor.execute(f'ALTER TABLE `{table}` MODIFY `uuid` char(32) NOT NULL')


class Migration(migrations.Migration):

    dependencies = [
        ('user_tasks', '0004_url_textfield'),
    ]

    operations = [
        # MariaDB cannot roll DDL back: Django refuses DDL inside the atomic block it
        # would otherwise wrap this operation in.
        migrations.RunPython(to_native_uuid, to_char32, atomic=False),
    ]
