"""Initial schema of the practice database.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 04:33:34.543509
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import xpm_sync.store.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_usage",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("rate_limited", sa.Integer(), nullable=False),
        sa.Column("min_remaining", sa.Integer(), nullable=True),
        sa.Column("day_remaining", sa.Integer(), nullable=True),
        sa.Column("app_min_remaining", sa.Integer(), nullable=True),
        sa.Column("updated_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", name=op.f("pk_api_usage")),
    )
    op.create_table(
        "categories",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_categories")),
    )
    op.create_table(
        "client_groups",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("taxable", sa.Boolean(), nullable=True),
        sa.Column("web_url", sa.String(length=500), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_client_groups")),
    )
    op.create_table(
        "clients",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("legacy_id", sa.String(length=20), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("title", sa.String(length=50), nullable=True),
        sa.Column("gender", sa.String(length=20), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("middle_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("other_name", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("date_of_death", sa.Date(), nullable=True),
        sa.Column("place_of_birth_city", sa.String(length=100), nullable=True),
        sa.Column("place_of_birth_country_code", sa.String(length=10), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("post_code", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=100), nullable=True),
        sa.Column("postal_address", sa.Text(), nullable=True),
        sa.Column("postal_city", sa.String(length=100), nullable=True),
        sa.Column("postal_region", sa.String(length=100), nullable=True),
        sa.Column("postal_post_code", sa.String(length=20), nullable=True),
        sa.Column("postal_country", sa.String(length=100), nullable=True),
        sa.Column("phone", sa.String(length=100), nullable=True),
        sa.Column("fax", sa.String(length=100), nullable=True),
        sa.Column("website", sa.String(length=255), nullable=True),
        sa.Column("referral_source", sa.String(length=255), nullable=True),
        sa.Column("export_code", sa.String(length=100), nullable=True),
        sa.Column("industry", sa.String(length=255), nullable=True),
        sa.Column("is_prospect", sa.Boolean(), nullable=True),
        sa.Column("is_archived", sa.Boolean(), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=True),
        sa.Column("account_manager_uuid", sa.String(length=36), nullable=True),
        sa.Column("job_manager_uuid", sa.String(length=36), nullable=True),
        sa.Column("client_type", sa.String(length=100), nullable=True),
        sa.Column("billing_client_uuid", sa.String(length=36), nullable=True),
        sa.Column("tax_number", sa.String(length=50), nullable=True),
        sa.Column("company_number", sa.String(length=50), nullable=True),
        sa.Column("business_number", sa.String(length=50), nullable=True),
        sa.Column("business_structure", sa.String(length=100), nullable=True),
        sa.Column("balance_month", sa.Integer(), nullable=True),
        sa.Column("prepare_gst", sa.Boolean(), nullable=True),
        sa.Column("gst_registered", sa.Boolean(), nullable=True),
        sa.Column("gst_period", sa.String(length=50), nullable=True),
        sa.Column("gst_basis", sa.String(length=50), nullable=True),
        sa.Column("provisional_tax_basis", sa.String(length=50), nullable=True),
        sa.Column("provisional_tax_ratio", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("signed_tax_authority", sa.Boolean(), nullable=True),
        sa.Column("tax_agent", sa.String(length=100), nullable=True),
        sa.Column("agency_status", sa.String(length=50), nullable=True),
        sa.Column("return_type", sa.String(length=50), nullable=True),
        sa.Column("prepare_activity_statement", sa.Boolean(), nullable=True),
        sa.Column("prepare_tax_return", sa.Boolean(), nullable=True),
        sa.Column("branch_number", sa.String(length=20), nullable=True),
        sa.Column("bank_bsb", sa.String(length=20), nullable=True),
        sa.Column("bank_account_name", sa.String(length=255), nullable=True),
        sa.Column("bank_account_number", sa.String(length=50), nullable=True),
        sa.Column("bank_name", sa.String(length=255), nullable=True),
        sa.Column("active_ato_client", sa.Boolean(), nullable=True),
        sa.Column("client_code", sa.String(length=50), nullable=True),
        sa.Column("web_url", sa.String(length=500), nullable=True),
        sa.Column("custom_fields_fetched_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_clients")),
    )
    op.create_table(
        "contacts",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("legacy_id", sa.String(length=20), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("salutation", sa.String(length=100), nullable=True),
        sa.Column("addressee", sa.String(length=255), nullable=True),
        sa.Column("mobile", sa.String(length=100), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("phone", sa.String(length=100), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_contacts")),
    )
    op.create_table(
        "custom_field_definitions",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("field_type", sa.String(length=50), nullable=True),
        sa.Column("value_element", sa.String(length=20), nullable=True),
        sa.Column("link_url", sa.String(length=500), nullable=True),
        sa.Column("options", sa.Text(), nullable=True),
        sa.Column("use_client", sa.Boolean(), nullable=True),
        sa.Column("use_contact", sa.Boolean(), nullable=True),
        sa.Column("use_job", sa.Boolean(), nullable=True),
        sa.Column("use_lead", sa.Boolean(), nullable=True),
        sa.Column("use_supplier", sa.Boolean(), nullable=True),
        sa.Column("use_job_task", sa.Boolean(), nullable=True),
        sa.Column("use_job_cost", sa.Boolean(), nullable=True),
        sa.Column("use_job_time", sa.Boolean(), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_custom_field_definitions")),
    )
    op.create_table(
        "job_states",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("code", sa.String(length=100), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_job_states")),
    )
    op.create_table(
        "jobs",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("job_number", sa.String(length=50), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("client_uuid", sa.String(length=36), nullable=True),
        sa.Column("client_order_number", sa.String(length=100), nullable=True),
        sa.Column("contact_uuid", sa.String(length=36), nullable=True),
        sa.Column("budget", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("state", sa.String(length=100), nullable=True),
        sa.Column("job_type", sa.String(length=100), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("completed_date", sa.Date(), nullable=True),
        sa.Column("internal_id", sa.String(length=50), nullable=True),
        sa.Column("manager_uuid", sa.String(length=36), nullable=True),
        sa.Column("partner_uuid", sa.String(length=36), nullable=True),
        sa.Column("web_url", sa.String(length=500), nullable=True),
        sa.Column("is_current", sa.Boolean(), nullable=True),
        sa.Column("custom_fields_fetched_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "job_number", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_client", ["tenant_id", "client_uuid"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("entity_key", sa.String(length=50), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("sent_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_status_created", ["status", "created_at"], unique=False)

    op.create_table(
        "practice_activity",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("occurred_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practice_activity")),
    )
    with op.batch_alter_table("practice_activity", schema=None) as batch_op:
        batch_op.create_index("ix_practice_activity_occurred_at", ["occurred_at"], unique=False)

    op.create_table(
        "practice_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("updated_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_practice_settings")),
    )
    op.create_table(
        "staff",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("phone", sa.String(length=100), nullable=True),
        sa.Column("mobile", sa.String(length=100), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("payroll_code", sa.String(length=100), nullable=True),
        sa.Column("web_url", sa.String(length=500), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_staff")),
    )
    op.create_table(
        "sync_state",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("watermark", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("cursor", sa.JSON(), nullable=True),
        sa.Column("last_full_sync_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("last_success_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("last_status", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_run_id", sa.String(length=250), nullable=True),
        sa.Column("updated_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "entity", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "xpm_connection",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conn_id", sa.String(length=250), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_name", sa.String(length=255), nullable=True),
        sa.Column("xero_connection_id", sa.String(length=36), nullable=True),
        sa.Column("auth_event_id", sa.String(length=36), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("token_ciphertext", sa.Text(), nullable=True),
        sa.Column("scopes", sa.String(length=500), nullable=True),
        sa.Column("access_expires_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("refresh_issued_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("connected_by", sa.String(length=255), nullable=True),
        sa.Column("connected_by_email", sa.String(length=255), nullable=True),
        sa.Column("connected_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("last_refresh_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("alert_sent_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("updated_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xpm_connection")),
        sa.UniqueConstraint("conn_id", "tenant_id", name=op.f("uq_xpm_connection_conn_id")),
    )
    op.create_table(
        "client_contacts",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("client_uuid", sa.String(length=36), nullable=False),
        sa.Column("contact_uuid", sa.String(length=36), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=True),
        sa.Column("position", sa.String(length=255), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "client_uuid"],
            ["clients.tenant_id", "clients.uuid"],
            name=op.f("fk_client_contacts_tenant_id_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "contact_uuid"],
            ["contacts.tenant_id", "contacts.uuid"],
            name=op.f("fk_client_contacts_tenant_id_contacts"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "client_uuid", "contact_uuid", name=op.f("pk_client_contacts")),
    )
    op.create_table(
        "client_custom_field_values",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("client_uuid", sa.String(length=36), nullable=False),
        sa.Column("field_uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("text_value", sa.Text(), nullable=True),
        sa.Column("number_value", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("decimal_value", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("boolean_value", sa.Boolean(), nullable=True),
        sa.Column("date_value", sa.Date(), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "client_uuid"],
            ["clients.tenant_id", "clients.uuid"],
            name=op.f("fk_client_custom_field_values_tenant_id_clients"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "client_uuid", "field_uuid", name=op.f("pk_client_custom_field_values")),
    )
    op.create_table(
        "client_group_members",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("group_uuid", sa.String(length=36), nullable=False),
        sa.Column("client_uuid", sa.String(length=36), nullable=False),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "client_uuid"],
            ["clients.tenant_id", "clients.uuid"],
            name=op.f("fk_client_group_members_tenant_id_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "group_uuid"],
            ["client_groups.tenant_id", "client_groups.uuid"],
            name=op.f("fk_client_group_members_tenant_id_client_groups"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "group_uuid", "client_uuid", name=op.f("pk_client_group_members")),
    )
    op.create_table(
        "client_relationships",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("client_uuid", sa.String(length=36), nullable=False),
        sa.Column("related_client_uuid", sa.String(length=36), nullable=True),
        sa.Column("relationship_type", sa.String(length=100), nullable=True),
        sa.Column("number_of_shares", sa.Integer(), nullable=True),
        sa.Column("percentage", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "client_uuid"],
            ["clients.tenant_id", "clients.uuid"],
            name=op.f("fk_client_relationships_tenant_id_clients"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_client_relationships")),
    )
    with op.batch_alter_table("client_relationships", schema=None) as batch_op:
        batch_op.create_index("ix_client_relationships_client", ["tenant_id", "client_uuid"], unique=False)

    op.create_table(
        "job_assignments",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("job_number", sa.String(length=50), nullable=False),
        sa.Column("staff_uuid", sa.String(length=36), nullable=False),
        sa.Column("allocated_minutes", sa.Integer(), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "job_number"],
            ["jobs.tenant_id", "jobs.job_number"],
            name=op.f("fk_job_assignments_tenant_id_jobs"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "job_number", "staff_uuid", name=op.f("pk_job_assignments")),
    )
    op.create_table(
        "job_custom_field_values",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("job_number", sa.String(length=50), nullable=False),
        sa.Column("field_uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("text_value", sa.Text(), nullable=True),
        sa.Column("number_value", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("decimal_value", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("boolean_value", sa.Boolean(), nullable=True),
        sa.Column("date_value", sa.Date(), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "job_number"],
            ["jobs.tenant_id", "jobs.job_number"],
            name=op.f("fk_job_custom_field_values_tenant_id_jobs"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "job_number", "field_uuid", name=op.f("pk_job_custom_field_values")),
    )
    op.create_table(
        "tax_returns",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("client_uuid", sa.String(length=36), nullable=False),
        sa.Column("tax_year", sa.Integer(), nullable=False),
        sa.Column("return_type", sa.String(length=50), nullable=True),
        sa.Column("balance_month", sa.Integer(), nullable=True),
        sa.Column("agency_status", sa.String(length=50), nullable=True),
        sa.Column("job_number", sa.String(length=50), nullable=True),
        sa.Column("job_state", sa.String(length=100), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("completed_date", sa.Date(), nullable=True),
        sa.Column("synced_at", xpm_sync.store.types.UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", xpm_sync.store.types.UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "client_uuid"],
            ["clients.tenant_id", "clients.uuid"],
            name=op.f("fk_tax_returns_tenant_id_clients"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "client_uuid", "tax_year", name=op.f("pk_tax_returns")),
    )


def downgrade() -> None:
    op.drop_table("tax_returns")
    op.drop_table("job_custom_field_values")
    op.drop_table("job_assignments")
    with op.batch_alter_table("client_relationships", schema=None) as batch_op:
        batch_op.drop_index("ix_client_relationships_client")

    op.drop_table("client_relationships")
    op.drop_table("client_group_members")
    op.drop_table("client_custom_field_values")
    op.drop_table("client_contacts")
    op.drop_table("xpm_connection")
    op.drop_table("sync_state")
    op.drop_table("staff")
    op.drop_table("practice_settings")
    with op.batch_alter_table("practice_activity", schema=None) as batch_op:
        batch_op.drop_index("ix_practice_activity_occurred_at")

    op.drop_table("practice_activity")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status_created")

    op.drop_table("outbox")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_client")

    op.drop_table("jobs")
    op.drop_table("job_states")
    op.drop_table("custom_field_definitions")
    op.drop_table("contacts")
    op.drop_table("clients")
    op.drop_table("client_groups")
    op.drop_table("categories")
    op.drop_table("api_usage")
