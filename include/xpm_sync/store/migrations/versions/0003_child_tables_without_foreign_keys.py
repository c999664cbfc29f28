"""Child tables without database foreign keys (see store.models); an index for group members by client.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 06:15:41.857051
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("client_contacts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_client_contacts_tenant_id_contacts"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_client_contacts_tenant_id_clients"), type_="foreignkey")

    with op.batch_alter_table("client_custom_field_values", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_client_custom_field_values_tenant_id_clients"), type_="foreignkey")

    with op.batch_alter_table("client_group_members", schema=None) as batch_op:
        batch_op.create_index("ix_client_group_members_client", ["tenant_id", "client_uuid"], unique=False)
        batch_op.drop_constraint(batch_op.f("fk_client_group_members_tenant_id_client_groups"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_client_group_members_tenant_id_clients"), type_="foreignkey")

    with op.batch_alter_table("client_relationships", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_client_relationships_tenant_id_clients"), type_="foreignkey")

    with op.batch_alter_table("job_assignments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_job_assignments_tenant_id_jobs"), type_="foreignkey")

    with op.batch_alter_table("job_custom_field_values", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_job_custom_field_values_tenant_id_jobs"), type_="foreignkey")

    with op.batch_alter_table("tax_returns", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tax_returns_tenant_id_clients"), type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("tax_returns", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_tax_returns_tenant_id_clients"),
            "clients",
            ["tenant_id", "client_uuid"],
            ["tenant_id", "uuid"],
        )

    with op.batch_alter_table("job_custom_field_values", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_job_custom_field_values_tenant_id_jobs"),
            "jobs",
            ["tenant_id", "job_number"],
            ["tenant_id", "job_number"],
        )

    with op.batch_alter_table("job_assignments", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_job_assignments_tenant_id_jobs"),
            "jobs",
            ["tenant_id", "job_number"],
            ["tenant_id", "job_number"],
        )

    with op.batch_alter_table("client_relationships", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_client_relationships_tenant_id_clients"),
            "clients",
            ["tenant_id", "client_uuid"],
            ["tenant_id", "uuid"],
        )

    with op.batch_alter_table("client_group_members", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_client_group_members_tenant_id_clients"),
            "clients",
            ["tenant_id", "client_uuid"],
            ["tenant_id", "uuid"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_client_group_members_tenant_id_client_groups"),
            "client_groups",
            ["tenant_id", "group_uuid"],
            ["tenant_id", "uuid"],
        )
        batch_op.drop_index("ix_client_group_members_client")

    with op.batch_alter_table("client_custom_field_values", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_client_custom_field_values_tenant_id_clients"),
            "clients",
            ["tenant_id", "client_uuid"],
            ["tenant_id", "uuid"],
        )

    with op.batch_alter_table("client_contacts", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_client_contacts_tenant_id_clients"),
            "clients",
            ["tenant_id", "client_uuid"],
            ["tenant_id", "uuid"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_client_contacts_tenant_id_contacts"),
            "contacts",
            ["tenant_id", "contact_uuid"],
            ["tenant_id", "uuid"],
        )
