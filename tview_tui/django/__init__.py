"""Django migration operations for TVIEWs (the ``django`` extra).

In a migration::

    from tview_tui.django import AlterTview, CreateTview, DropTview

    operations = [CreateTview("post", "SELECT p.pk_post, ... AS data FROM app_post p")]

Each is reversible (``AlterTview`` with ``previous_definition``, ``DropTview`` with
``definition``) and leaves Django's model state alone. Add ``"tview_tui.django"`` to
INSTALLED_APPS for a check (``manage.py check --database default``, run by ``migrate``) that
warns when a database has no engine installed.
"""

from .operations import AlterTview, CreateTview, DropTview

__all__ = ["AlterTview", "CreateTview", "DropTview"]
