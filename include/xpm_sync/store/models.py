"""The practice database: SQLAlchemy 2 typed models.

Every table that mirrors XPM is keyed by the practice's tenant id plus XPM's own key (a UUID, or
the job number for jobs), so two practices never share a row. Child tables (contacts at a client,
staff on a job, custom field values, ...) carry no database foreign keys: the sync writes them in
the same transaction as their parents, and PostgreSQL's per-row key checks against rows inserted in
that transaction grew quadratically with its size (measured: a 100,000-job load slowed to minutes).
Columns marked `info={"meta": True}` belong to the sync, not to XPM; the upsert leaves them out when
deciding whether a row changed.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from xpm_sync.store.types import UtcDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

META = {"meta": True}
Money = Numeric(18, 4)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


def table_of(model: type[Base]) -> Table:
    """A model's table, typed as the `Table` every model here maps."""
    table: Table = model.__table__  # type: ignore[assignment]
    return table


class ActivityStatus(enum.StrEnum):
    """The statuses a Practice Activity entry can have."""

    SUCCESS = "Success"
    FAILURE = "Failure"
    IN_PROGRESS = "In Progress"
    ACTION_REQUIRED = "Action Required"
    ALERT = "Alert"


class ConnectionStatus(enum.StrEnum):
    """Where an XPM connection stands."""

    CONNECTED = "connected"
    NEEDS_RECONNECT = "needs_reconnect"
    DISCONNECTED = "disconnected"


class Synced:
    """Columns every table mirrored from XPM carries."""

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True, sort_order=-10)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow, info=META)
    removed_upstream_at: Mapped[datetime | None] = mapped_column(info=META)
    pending_push: Mapped[bool] = mapped_column(default=False, server_default=false(), info=META)


# --- the connection -----------------------------------------------------------------------------


class XpmGrant(Base):
    """One consent at Xero: the token set it gave (Fernet-encrypted), refreshed under a lease. Every
    practice that consent connected points here (`XpmConnection.grant_id`), so the rotating pair lives
    in exactly one place and is refreshed once for all of them."""

    __tablename__ = "xpm_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_ciphertext: Mapped[str | None] = mapped_column(Text)  # None once revoked or given up
    auth_event_id: Mapped[str | None] = mapped_column(String(36))
    access_expires_at: Mapped[datetime | None]
    refresh_issued_at: Mapped[datetime | None]
    last_refresh_at: Mapped[datetime | None]
    # A token refresh in progress: who holds it and until when. Held without a transaction open,
    # so the call to Xero never keeps the database locked.
    refresh_lease_owner: Mapped[str | None] = mapped_column(String(64))
    refresh_lease_until: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class XpmConnection(Base):
    """One practice (`conn_id`) connected to one XPM practice (tenant), through a grant; `version`
    guards writes."""

    __tablename__ = "xpm_connection"
    __table_args__ = (UniqueConstraint("conn_id", "tenant_id"), Index("ix_xpm_connection_grant_id", "grant_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conn_id: Mapped[str] = mapped_column(String(250))
    tenant_id: Mapped[str] = mapped_column(String(36))
    tenant_name: Mapped[str | None] = mapped_column(String(255))
    xero_connection_id: Mapped[str | None] = mapped_column(String(36))
    auth_event_id: Mapped[str | None] = mapped_column(String(36))
    active: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(32), default=ConnectionStatus.CONNECTED.value)
    grant_id: Mapped[int | None] = mapped_column(Integer)  # the grant holding its tokens; None when disconnected
    scopes: Mapped[str | None] = mapped_column(String(500))
    connected_by: Mapped[str | None] = mapped_column(String(255))
    connected_by_email: Mapped[str | None] = mapped_column(String(255))
    connected_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    alert_sent_at: Mapped[datetime | None]
    # Scopes XPM (or the settings) found missing since the last connect: {scope: what needs it}.
    missing_scopes: Mapped[dict[str, Any] | None]
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OAuthAttempt(Base):
    """A sign-in started and not yet finished: its `state`, PKCE verifier (encrypted) and who began it."""

    __tablename__ = "oauth_attempts"

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    conn_id: Mapped[str] = mapped_column(String(250))
    requested_by: Mapped[str | None] = mapped_column(String(255))
    verifier_ciphertext: Mapped[str] = mapped_column(Text)
    redirect_uri: Mapped[str] = mapped_column(String(500))
    switch_practice: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    consumed_at: Mapped[datetime | None]
    # A sign-in that reached several practices waits here (tokens encrypted) for the administrator's choice.
    pending_ciphertext: Mapped[str | None] = mapped_column(Text)
    pending_practices: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    chosen_at: Mapped[datetime | None]


# --- reference data -----------------------------------------------------------------------------


class Staff(Synced, Base):
    __tablename__ = "staff"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(100))
    mobile: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(Text)
    payroll_code: Mapped[str | None] = mapped_column(String(100))
    web_url: Mapped[str | None] = mapped_column(String(500))


class Category(Synced, Base):
    __tablename__ = "categories"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))


class JobState(Synced, Base):
    __tablename__ = "job_states"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str | None] = mapped_column(String(100))


class ClientGroup(Synced, Base):
    __tablename__ = "client_groups"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    taxable: Mapped[bool | None]
    web_url: Mapped[str | None] = mapped_column(String(500))


class CustomFieldDefinition(Synced, Base):
    __tablename__ = "custom_field_definitions"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    field_type: Mapped[str | None] = mapped_column(String(50))
    value_element: Mapped[str | None] = mapped_column(String(20))
    link_url: Mapped[str | None] = mapped_column(String(500))
    options: Mapped[str | None] = mapped_column(Text)
    use_client: Mapped[bool | None]
    use_contact: Mapped[bool | None]
    use_job: Mapped[bool | None]
    use_lead: Mapped[bool | None]
    use_supplier: Mapped[bool | None]
    use_job_task: Mapped[bool | None]
    use_job_cost: Mapped[bool | None]
    use_job_time: Mapped[bool | None]


# --- clients ------------------------------------------------------------------------------------


class Client(Synced, Base):
    __tablename__ = "clients"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    legacy_id: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(String(50))
    gender: Mapped[str | None] = mapped_column(String(20))
    first_name: Mapped[str | None] = mapped_column(String(100))
    middle_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    other_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    date_of_death: Mapped[date | None] = mapped_column(Date)
    place_of_birth_city: Mapped[str | None] = mapped_column(String(100))
    place_of_birth_country_code: Mapped[str | None] = mapped_column(String(10))
    address: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    post_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(100))
    postal_address: Mapped[str | None] = mapped_column(Text)
    postal_city: Mapped[str | None] = mapped_column(String(100))
    postal_region: Mapped[str | None] = mapped_column(String(100))
    postal_post_code: Mapped[str | None] = mapped_column(String(20))
    postal_country: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(100))
    fax: Mapped[str | None] = mapped_column(String(100))
    website: Mapped[str | None] = mapped_column(String(255))
    referral_source: Mapped[str | None] = mapped_column(String(255))
    export_code: Mapped[str | None] = mapped_column(String(100))
    industry: Mapped[str | None] = mapped_column(String(255))
    is_prospect: Mapped[bool | None]
    is_archived: Mapped[bool | None]
    is_deleted: Mapped[bool | None]
    account_manager_uuid: Mapped[str | None] = mapped_column(String(36))
    job_manager_uuid: Mapped[str | None] = mapped_column(String(36))
    client_type: Mapped[str | None] = mapped_column(String(100))
    billing_client_uuid: Mapped[str | None] = mapped_column(String(36))
    tax_number: Mapped[str | None] = mapped_column(String(50))
    company_number: Mapped[str | None] = mapped_column(String(50))
    business_number: Mapped[str | None] = mapped_column(String(50))
    business_structure: Mapped[str | None] = mapped_column(String(100))
    balance_month: Mapped[int | None]
    prepare_gst: Mapped[bool | None]
    gst_registered: Mapped[bool | None]
    gst_period: Mapped[str | None] = mapped_column(String(50))
    gst_basis: Mapped[str | None] = mapped_column(String(50))
    provisional_tax_basis: Mapped[str | None] = mapped_column(String(50))
    provisional_tax_ratio: Mapped[Decimal | None] = mapped_column(Money)
    signed_tax_authority: Mapped[bool | None]
    tax_agent: Mapped[str | None] = mapped_column(String(100))
    agency_status: Mapped[str | None] = mapped_column(String(50))
    return_type: Mapped[str | None] = mapped_column(String(50))
    prepare_activity_statement: Mapped[bool | None]
    prepare_tax_return: Mapped[bool | None]
    branch_number: Mapped[str | None] = mapped_column(String(20))
    bank_bsb: Mapped[str | None] = mapped_column(String(20))
    bank_account_name: Mapped[str | None] = mapped_column(String(255))
    bank_account_number: Mapped[str | None] = mapped_column(String(50))
    bank_name: Mapped[str | None] = mapped_column(String(255))
    active_ato_client: Mapped[bool | None]
    client_code: Mapped[str | None] = mapped_column(String(50))
    web_url: Mapped[str | None] = mapped_column(String(500))
    custom_fields_fetched_at: Mapped[datetime | None] = mapped_column(info=META)
    # Set when there is reason to read the custom fields again (the client changed, a read failed).
    custom_fields_due_at: Mapped[datetime | None] = mapped_column(info=META)
    row_hash: Mapped[str | None] = mapped_column(String(32), info=META)


class Contact(Synced, Base):
    __tablename__ = "contacts"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    legacy_id: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(255))
    salutation: Mapped[str | None] = mapped_column(String(100))
    addressee: Mapped[str | None] = mapped_column(String(255))
    mobile: Mapped[str | None] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(100))
    is_deleted: Mapped[bool | None]


class ClientContact(Synced, Base):
    """A contact's place at a client (primary or not, and the position held)."""

    __tablename__ = "client_contacts"

    client_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    contact_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    is_primary: Mapped[bool | None]
    position: Mapped[str | None] = mapped_column(String(255))


class ClientGroupMember(Synced, Base):
    __tablename__ = "client_group_members"
    __table_args__ = (Index("ix_client_group_members_client", "tenant_id", "client_uuid"),)

    group_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)


class ClientRelationship(Synced, Base):
    __tablename__ = "client_relationships"
    __table_args__ = (Index("ix_client_relationships_client", "tenant_id", "client_uuid"),)

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_uuid: Mapped[str] = mapped_column(String(36))
    related_client_uuid: Mapped[str | None] = mapped_column(String(36))
    relationship_type: Mapped[str | None] = mapped_column(String(100))
    number_of_shares: Mapped[int | None]
    percentage: Mapped[Decimal | None] = mapped_column(Money)
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)


class ClientNote(Synced, Base):
    """A client's note, by its place in the client's list (XPM gives notes no id). Since 18 August
    2025 XPM answers `Folder` empty and names the note's tag in `Tag`; both are kept as sent."""

    __tablename__ = "client_notes"

    client_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str | None] = mapped_column(String(255))
    text: Mapped[str | None] = mapped_column(Text)
    folder: Mapped[str | None] = mapped_column(String(255))
    tag: Mapped[str | None] = mapped_column(String(255))
    note_date: Mapped[date | None] = mapped_column(Date)  # the day; XPM sends the time with no zone
    created_by: Mapped[str | None] = mapped_column(String(255))


# --- jobs ---------------------------------------------------------------------------------------


class Job(Synced, Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_client", "tenant_id", "client_uuid"),)

    job_number: Mapped[str] = mapped_column(String(50), primary_key=True)
    uuid: Mapped[str | None] = mapped_column(String(36))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    client_uuid: Mapped[str | None] = mapped_column(String(36))
    client_order_number: Mapped[str | None] = mapped_column(String(100))
    contact_uuid: Mapped[str | None] = mapped_column(String(36))
    budget: Mapped[Decimal | None] = mapped_column(Money)
    state: Mapped[str | None] = mapped_column(String(100))
    job_type: Mapped[str | None] = mapped_column(String(100))
    start_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    completed_date: Mapped[date | None] = mapped_column(Date)
    internal_id: Mapped[str | None] = mapped_column(String(50))
    manager_uuid: Mapped[str | None] = mapped_column(String(36))
    partner_uuid: Mapped[str | None] = mapped_column(String(36))
    web_url: Mapped[str | None] = mapped_column(String(500))
    is_current: Mapped[bool | None] = mapped_column(info=META)
    custom_fields_fetched_at: Mapped[datetime | None] = mapped_column(info=META)
    custom_fields_due_at: Mapped[datetime | None] = mapped_column(info=META)
    row_hash: Mapped[str | None] = mapped_column(String(32), info=META)


class JobAssignment(Synced, Base):
    """A staff member on the job's own `<Assigned>` list. XPM sends no minutes there (it allocates
    them per task, `JobTaskStaff`): `allocated_minutes` is what it sent, else NULL (unknown)."""

    __tablename__ = "job_assignments"

    job_number: Mapped[str] = mapped_column(String(50), primary_key=True)
    staff_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    allocated_minutes: Mapped[int | None]


class JobTask(Synced, Base):
    """A task of a job, from the detailed job answers: its estimate, the minutes timed on it so far
    (`actual_minutes`), and its type (`task_type_uuid`, XPM's TaskUUID)."""

    __tablename__ = "job_tasks"
    __table_args__ = (Index("ix_job_tasks_job", "tenant_id", "job_number"),)

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_number: Mapped[str] = mapped_column(String(50))
    position: Mapped[int]  # its place in the job's list
    task_type_uuid: Mapped[str | None] = mapped_column(String(36))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    estimated_minutes: Mapped[int | None]
    actual_minutes: Mapped[int | None]
    completed: Mapped[bool | None]
    billable: Mapped[bool | None]
    folder: Mapped[str | None] = mapped_column(String(255))
    start_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)


class JobTaskStaff(Synced, Base):
    """A staff member allocated to a task, with the minutes XPM allocated (NULL when it sent none)."""

    __tablename__ = "job_task_staff"
    __table_args__ = (Index("ix_job_task_staff_job", "tenant_id", "job_number"),)

    task_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    staff_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_number: Mapped[str] = mapped_column(String(50))
    allocated_minutes: Mapped[int | None]


class JobMilestone(Synced, Base):
    __tablename__ = "job_milestones"
    __table_args__ = (Index("ix_job_milestones_job", "tenant_id", "job_number"),)

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_number: Mapped[str] = mapped_column(String(50))
    milestone_date: Mapped[date | None] = mapped_column(Date)
    description: Mapped[str | None] = mapped_column(Text)
    completed: Mapped[bool | None]
    folder: Mapped[str | None] = mapped_column(String(255))


class JobCost(Synced, Base):
    """A cost recorded on a job (`job.api/costs`): quantity, unit cost and price, and its supplier."""

    __tablename__ = "job_costs"
    __table_args__ = (Index("ix_job_costs_job", "tenant_id", "job_number"),)

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_number: Mapped[str | None] = mapped_column(String(50))
    cost_date: Mapped[date | None] = mapped_column(Date)
    description: Mapped[str | None] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal | None] = mapped_column(Money)
    unit_cost: Mapped[Decimal | None] = mapped_column(Money)
    unit_price: Mapped[Decimal | None] = mapped_column(Money)
    billable: Mapped[bool | None]
    supplier_uuid: Mapped[str | None] = mapped_column(String(36))
    supplier_name: Mapped[str | None] = mapped_column(String(255))


# --- time, invoices and quotes (read only) ------------------------------------------------------


class TimeEntry(Synced, Base):
    """A timesheet entry: who worked on which job's task, on which day, for how many minutes."""

    __tablename__ = "time_entries"
    __table_args__ = (
        Index("ix_time_entries_date", "tenant_id", "entry_date"),
        Index("ix_time_entries_job", "tenant_id", "job_number"),
    )

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_number: Mapped[str | None] = mapped_column(String(50))
    task_uuid: Mapped[str | None] = mapped_column(String(36))
    staff_uuid: Mapped[str | None] = mapped_column(String(36))
    entry_date: Mapped[date | None] = mapped_column(Date)
    minutes: Mapped[int | None]
    note: Mapped[str | None] = mapped_column(Text)
    billable: Mapped[bool | None]
    start_time: Mapped[str | None] = mapped_column(String(20))
    end_time: Mapped[str | None] = mapped_column(String(20))
    invoice_task_uuid: Mapped[str | None] = mapped_column(String(36))
    web_url: Mapped[str | None] = mapped_column(String(500))


class Invoice(Synced, Base):
    """An invoice, keyed by its number. `is_current` is whether XPM's current list holds it;
    `payments_read_at_paid` is the amount paid when its payments were last read (meta)."""

    __tablename__ = "invoices"
    __table_args__ = (Index("ix_invoices_date", "tenant_id", "invoice_date"),)

    invoice_number: Mapped[str] = mapped_column(String(50), primary_key=True)
    uuid: Mapped[str | None] = mapped_column(String(36))
    invoice_type: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str | None] = mapped_column(String(50))
    job_text: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    invoice_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    amount_tax: Mapped[Decimal | None] = mapped_column(Money)
    amount_including_tax: Mapped[Decimal | None] = mapped_column(Money)
    amount_paid: Mapped[Decimal | None] = mapped_column(Money)
    amount_outstanding: Mapped[Decimal | None] = mapped_column(Money)
    client_uuid: Mapped[str | None] = mapped_column(String(36))
    contact_uuid: Mapped[str | None] = mapped_column(String(36))
    is_current: Mapped[bool | None] = mapped_column(info=META)
    payments_read_at_paid: Mapped[Decimal | None] = mapped_column(Money, info=META)


class InvoiceJob(Synced, Base):
    """A job an invoice bills (from the detailed invoice answers)."""

    __tablename__ = "invoice_jobs"
    __table_args__ = (Index("ix_invoice_jobs_job", "tenant_id", "job_number"),)

    invoice_number: Mapped[str] = mapped_column(String(50), primary_key=True)
    job_number: Mapped[str] = mapped_column(String(50), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    client_order_number: Mapped[str | None] = mapped_column(String(100))


class InvoicePayment(Synced, Base):
    """A payment of an invoice, by its place in XPM's list (XPM gives payments no id)."""

    __tablename__ = "invoice_payments"

    invoice_number: Mapped[str] = mapped_column(String(50), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    payment_date: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    reference: Mapped[str | None] = mapped_column(String(255))


class Quote(Synced, Base):
    __tablename__ = "quotes"
    __table_args__ = (Index("ix_quotes_date", "tenant_id", "quote_date"),)

    quote_number: Mapped[str] = mapped_column(String(50), primary_key=True)
    quote_type: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(50))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    budget: Mapped[Decimal | None] = mapped_column(Money)
    option_explanation: Mapped[str | None] = mapped_column(Text)
    quote_date: Mapped[date | None] = mapped_column(Date)
    valid_date: Mapped[date | None] = mapped_column(Date)
    estimated_cost: Mapped[Decimal | None] = mapped_column(Money)
    estimated_cost_tax: Mapped[Decimal | None] = mapped_column(Money)
    estimated_cost_including_tax: Mapped[Decimal | None] = mapped_column(Money)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    amount_tax: Mapped[Decimal | None] = mapped_column(Money)
    amount_including_tax: Mapped[Decimal | None] = mapped_column(Money)
    client_uuid: Mapped[str | None] = mapped_column(String(36))
    contact_uuid: Mapped[str | None] = mapped_column(String(36))
    is_current: Mapped[bool | None] = mapped_column(info=META)


# --- custom field values ------------------------------------------------------------------------


class CustomFieldValue:
    """The value columns: XPM fills the one its definition's `ValueElement` names."""

    field_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    text_value: Mapped[str | None] = mapped_column(Text)
    number_value: Mapped[Decimal | None] = mapped_column(Money)
    decimal_value: Mapped[Decimal | None] = mapped_column(Money)
    boolean_value: Mapped[bool | None]
    date_value: Mapped[date | None] = mapped_column(Date)


class ClientCustomFieldValue(CustomFieldValue, Synced, Base):
    __tablename__ = "client_custom_field_values"

    client_uuid: Mapped[str] = mapped_column(String(36), primary_key=True, sort_order=-5)


class JobCustomFieldValue(CustomFieldValue, Synced, Base):
    __tablename__ = "job_custom_field_values"

    job_number: Mapped[str] = mapped_column(String(50), primary_key=True, sort_order=-5)


# --- tax returns --------------------------------------------------------------------------------


class TaxReturn(Synced, Base):
    """A register row: one client's return for one tax year, derived from XPM data.

    XPM has no tax-return resource and Xero has no public Tax API, so the register is built from
    each client's tax settings and the client's tax-return jobs.
    """

    __tablename__ = "tax_returns"

    client_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    tax_year: Mapped[int] = mapped_column(primary_key=True)
    return_type: Mapped[str | None] = mapped_column(String(50))
    balance_month: Mapped[int | None]
    agency_status: Mapped[str | None] = mapped_column(String(50))
    job_number: Mapped[str | None] = mapped_column(String(50))
    job_state: Mapped[str | None] = mapped_column(String(100))
    due_date: Mapped[date | None] = mapped_column(Date)
    completed_date: Mapped[date | None] = mapped_column(Date)


# --- the pipeline's own records -----------------------------------------------------------------


class PracticeActivity(Base):
    """Append-only log of what the pipeline did, as the practice sees it."""

    __tablename__ = "practice_activity"
    __table_args__ = (
        Index("ix_practice_activity_occurred_at", "occurred_at"),
        Index("ix_practice_activity_conn_id_id", "conn_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    conn_id: Mapped[str] = mapped_column(String(250))  # the practice's connection (`xpm_sync.practices`)
    tenant_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None]
    actor: Mapped[str | None] = mapped_column(String(255))


class SyncState(Base):
    """An entity's checkpoint for one practice: advanced only after its rows are committed."""

    __tablename__ = "sync_state"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    entity: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[datetime | None]
    cursor: Mapped[dict[str, Any] | None]
    last_full_sync_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_run_id: Mapped[str | None] = mapped_column(String(250))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChangeKind(enum.StrEnum):
    """What a load did to a mirrored row, as the change feed says it."""

    INSERTED = "inserted"  # the store never held it
    CHANGED = "changed"  # XPM's data for it differs from what the store held (or it is back after removal)
    REMOVED = "removed"  # a complete list no longer holds it: marked removed upstream, never deleted


class Change(Base):
    """The change feed: one row for each mirrored row a load inserted, changed or marked removed,
    kept for `[xpm_sync] change_feed_days`. `entity` is the entity (and Asset) whose task wrote it,
    `table_name` and `record_key` the row (XPM's key: a UUID, a job or invoice number)."""

    __tablename__ = "changes"
    __table_args__ = (
        Index("ix_changes_tenant_id_changed_at", "tenant_id", "changed_at"),
        Index("ix_changes_tenant_id_run_id_entity", "tenant_id", "run_id", "entity"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    entity: Mapped[str] = mapped_column(String(64))
    table_name: Mapped[str] = mapped_column(String(64))
    record_key: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[str | None] = mapped_column(String(250))
    changed_at: Mapped[datetime]


class DecisionKind(enum.StrEnum):
    """What a person is asked to decide in Airflow's Required Actions."""

    REMOVAL = "removal"  # a complete list would mark many stored rows removed
    OFF_CURRENT = "off_current"  # XPM's current job list would drop many open jobs
    CONFLICT = "conflict"  # a local change met a newer value in XPM while XPM masters the field


class DecisionOutcome(enum.StrEnum):
    APPROVED = "approved"  # mark removed / keep the local value
    REJECTED = "rejected"  # keep the rows / keep XPM's value
    TIMED_OUT = "timed_out"  # nobody answered in time: the safe choice (keep) was taken
    SUPERSEDED = "superseded"  # a newer list of the same entity came first: nothing applied


class Decision(Base):
    """Something the sync would not do on its own, waiting for a person: a held-back mass removal
    (its exact keys), or a push conflict (its outbox entry). Asked in Airflow's Required Actions by
    the run named here; `outcome`, `decided_by` and `decided_at` say what was done."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_tenant_id_outcome", "tenant_id", "outcome"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str] = mapped_column(String(64))
    table_name: Mapped[str] = mapped_column(String(64))
    key_column: Mapped[str] = mapped_column(String(64))
    keys: Mapped[list[str]] = mapped_column(JSON)
    stored: Mapped[int] = mapped_column(default=0)
    question: Mapped[str] = mapped_column(Text)
    raised_by_run: Mapped[str | None] = mapped_column(String(250))
    dag_id: Mapped[str | None] = mapped_column(String(250))
    run_id: Mapped[str | None] = mapped_column(String(250))  # the run that asks
    task_id: Mapped[str | None] = mapped_column(String(250))
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str | None] = mapped_column(String(16))
    choice: Mapped[str | None] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[datetime | None]
    refreshed_at: Mapped[datetime | None]  # jobs taken off the current list: their final state read


class PracticeSetting(Base):
    __tablename__ = "practice_settings"

    conn_id: Mapped[str] = mapped_column(String(250), primary_key=True)  # the practice's connection
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(255))


class OutboxStatus(enum.StrEnum):
    """Where a local change stands on its way to XPM."""

    PENDING = "pending"  # waiting for the next push
    SENDING = "sending"  # a push sent it and has not heard back: re-read XPM before sending again
    VERIFY = "verify"  # sent over a write XPM never answered: read once more, in case that write lands late
    DONE = "done"  # XPM said OK (or already held it)
    FAILED = "failed"  # XPM refused it (200 + ERROR); kept until retried or discarded
    CONFLICT = "conflict"  # XPM's value changed meanwhile and XPM masters the field now
    DISCARDED = "discarded"


class OutboxEntry(Base):
    """A local change to push to XPM: who made it, when, and each field's value before and after.

    `payload` is {"fields": {name: {"before": .., "after": .., ...}}} in XPM's own text forms; a
    push that meets a changed value in XPM keeps it under "xpm".
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_created", "status", "created_at"),
        Index("ix_outbox_record", "tenant_id", "entity", "entity_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    entity: Mapped[str] = mapped_column(String(64))
    entity_key: Mapped[str] = mapped_column(String(50))
    operation: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255))
    sending_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class ApiRequest(Base):
    """A write to the JSON API sent with an `Idempotency-Key`: the answer it got, so that the same
    request sent again is answered the same and records nothing twice. Kept for a day."""

    __tablename__ = "api_requests"

    actor: Mapped[str] = mapped_column(String(255), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # of the method, path and body
    status_code: Mapped[int | None]  # None while the request is being carried out
    response: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobStateCode(Base):
    """A job state's interface code: `job.api/state` takes it, and no XPM answer gives it."""

    __tablename__ = "job_state_codes"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    code: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(255))


class AnswerFingerprint(Base):
    """The last answer to one list request that was loaded in full: its digest, the keys it held
    and a signature of those rows as the load left them (see `xpm_sync.api.fingerprint`)."""

    __tablename__ = "answer_fingerprints"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request: Mapped[str] = mapped_column(String(500), primary_key=True)
    digest: Mapped[str] = mapped_column(String(32))
    keys: Mapped[list[str]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(String(200))
    loaded_at: Mapped[datetime]


class AppMinute(Base):
    """Calls the app made to XPM in one minute, over every practice of the deployment: XPM allows
    10,000 a minute per app, and every worker of every practice counts here and paces by it."""

    __tablename__ = "api_app_minutes"

    minute: Mapped[datetime] = mapped_column(primary_key=True)  # UTC, truncated to the minute
    calls: Mapped[int] = mapped_column(default=0)


class ApiUsage(Base):
    """Calls made to XPM per practice and day, with the limits XPM last reported."""

    __tablename__ = "api_usage"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    calls: Mapped[int] = mapped_column(default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # answers' bodies, as sent
    errors: Mapped[int] = mapped_column(default=0)
    rate_limited: Mapped[int] = mapped_column(default=0)
    min_remaining: Mapped[int | None]
    day_remaining: Mapped[int | None]
    app_min_remaining: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
