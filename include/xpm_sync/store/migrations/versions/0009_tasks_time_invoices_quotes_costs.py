"""Jobs' tasks (with their staff's allocated minutes) and milestones; job costs; time entries;
invoices (with their jobs and payments); quotes. A job's own staff list keeps only what XPM sent
there: the minutes it held (summed from the tasks) are cleared, and the tasks hold them now.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 01:23:28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from xpm_sync.store.types import UtcDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invoice_jobs",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("invoice_number", sa.String(length=50), nullable=False),
        sa.Column("job_number", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("client_order_number", sa.String(length=100), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "invoice_number", "job_number", name=op.f("pk_invoice_jobs")),
    )
    with op.batch_alter_table("invoice_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_invoice_jobs_job", ["tenant_id", "job_number"], unique=False)

    op.create_table(
        "invoice_payments",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("invoice_number", sa.String(length=50), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("payment_date", sa.Date(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "invoice_number", "position", name=op.f("pk_invoice_payments")),
    )
    op.create_table(
        "invoices",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("invoice_number", sa.String(length=50), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=True),
        sa.Column("invoice_type", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=50), nullable=True),
        sa.Column("job_text", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("invoice_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("amount_tax", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("amount_including_tax", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("amount_paid", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("amount_outstanding", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("client_uuid", sa.String(length=36), nullable=True),
        sa.Column("contact_uuid", sa.String(length=36), nullable=True),
        sa.Column("is_current", sa.Boolean(), nullable=True),
        sa.Column("payments_read_at_paid", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "invoice_number", name=op.f("pk_invoices")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index("ix_invoices_date", ["tenant_id", "invoice_date"], unique=False)

    op.create_table(
        "job_costs",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("job_number", sa.String(length=50), nullable=True),
        sa.Column("cost_date", sa.Date(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("code", sa.String(length=100), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("unit_cost", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("unit_price", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("billable", sa.Boolean(), nullable=True),
        sa.Column("supplier_uuid", sa.String(length=36), nullable=True),
        sa.Column("supplier_name", sa.String(length=255), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_job_costs")),
    )
    with op.batch_alter_table("job_costs", schema=None) as batch_op:
        batch_op.create_index("ix_job_costs_job", ["tenant_id", "job_number"], unique=False)

    op.create_table(
        "job_milestones",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("job_number", sa.String(length=50), nullable=False),
        sa.Column("milestone_date", sa.Date(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=True),
        sa.Column("folder", sa.String(length=255), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_job_milestones")),
    )
    with op.batch_alter_table("job_milestones", schema=None) as batch_op:
        batch_op.create_index("ix_job_milestones_job", ["tenant_id", "job_number"], unique=False)

    op.create_table(
        "job_task_staff",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("task_uuid", sa.String(length=36), nullable=False),
        sa.Column("staff_uuid", sa.String(length=36), nullable=False),
        sa.Column("job_number", sa.String(length=50), nullable=False),
        sa.Column("allocated_minutes", sa.Integer(), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "task_uuid", "staff_uuid", name=op.f("pk_job_task_staff")),
    )
    with op.batch_alter_table("job_task_staff", schema=None) as batch_op:
        batch_op.create_index("ix_job_task_staff_job", ["tenant_id", "job_number"], unique=False)

    op.create_table(
        "job_tasks",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("job_number", sa.String(length=50), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("task_type_uuid", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("estimated_minutes", sa.Integer(), nullable=True),
        sa.Column("actual_minutes", sa.Integer(), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=True),
        sa.Column("billable", sa.Boolean(), nullable=True),
        sa.Column("folder", sa.String(length=255), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_job_tasks")),
    )
    with op.batch_alter_table("job_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_job_tasks_job", ["tenant_id", "job_number"], unique=False)

    op.create_table(
        "quotes",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("quote_number", sa.String(length=50), nullable=False),
        sa.Column("quote_type", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=50), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("budget", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("option_explanation", sa.Text(), nullable=True),
        sa.Column("quote_date", sa.Date(), nullable=True),
        sa.Column("valid_date", sa.Date(), nullable=True),
        sa.Column("estimated_cost", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("estimated_cost_tax", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("estimated_cost_including_tax", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("amount_tax", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("amount_including_tax", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("client_uuid", sa.String(length=36), nullable=True),
        sa.Column("contact_uuid", sa.String(length=36), nullable=True),
        sa.Column("is_current", sa.Boolean(), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "quote_number", name=op.f("pk_quotes")),
    )
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.create_index("ix_quotes_date", ["tenant_id", "quote_date"], unique=False)

    op.create_table(
        "time_entries",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("job_number", sa.String(length=50), nullable=True),
        sa.Column("task_uuid", sa.String(length=36), nullable=True),
        sa.Column("staff_uuid", sa.String(length=36), nullable=True),
        sa.Column("entry_date", sa.Date(), nullable=True),
        sa.Column("minutes", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("billable", sa.Boolean(), nullable=True),
        sa.Column("start_time", sa.String(length=20), nullable=True),
        sa.Column("end_time", sa.String(length=20), nullable=True),
        sa.Column("invoice_task_uuid", sa.String(length=36), nullable=True),
        sa.Column("web_url", sa.String(length=500), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.Column("removed_upstream_at", UtcDateTime(), nullable=True),
        sa.Column("pending_push", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "uuid", name=op.f("pk_time_entries")),
    )
    with op.batch_alter_table("time_entries", schema=None) as batch_op:
        batch_op.create_index("ix_time_entries_date", ["tenant_id", "entry_date"], unique=False)
        batch_op.create_index("ix_time_entries_job", ["tenant_id", "job_number"], unique=False)

    op.execute("UPDATE job_assignments SET allocated_minutes = NULL")


def downgrade() -> None:
    with op.batch_alter_table("time_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_time_entries_job")
        batch_op.drop_index("ix_time_entries_date")

    op.drop_table("time_entries")
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.drop_index("ix_quotes_date")

    op.drop_table("quotes")
    with op.batch_alter_table("job_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_job_tasks_job")

    op.drop_table("job_tasks")
    with op.batch_alter_table("job_task_staff", schema=None) as batch_op:
        batch_op.drop_index("ix_job_task_staff_job")

    op.drop_table("job_task_staff")
    with op.batch_alter_table("job_milestones", schema=None) as batch_op:
        batch_op.drop_index("ix_job_milestones_job")

    op.drop_table("job_milestones")
    with op.batch_alter_table("job_costs", schema=None) as batch_op:
        batch_op.drop_index("ix_job_costs_job")

    op.drop_table("job_costs")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_date")

    op.drop_table("invoices")
    op.drop_table("invoice_payments")
    with op.batch_alter_table("invoice_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_invoice_jobs_job")

    op.drop_table("invoice_jobs")
