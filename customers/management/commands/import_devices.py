from customers.csv_columns import ImportKind
from customers.management.commands._import import ImportCommand


class Command(ImportCommand):
    help = "Import devices from a CSV file (upsert); prints progress and writes an error report."
    kind = ImportKind.DEVICES
    can_replace = True
