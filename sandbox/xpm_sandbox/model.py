"""The sandbox's practice data: plain records, the truth the sync is compared against."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


@dataclass(slots=True)
class Staff:
    uuid: str
    name: str
    email: str
    phone: str = ""
    mobile: str = ""
    address: str = ""
    payroll_code: str = ""


@dataclass(slots=True)
class Named:
    """A category or a job state (the state's `code` is its interface code)."""

    uuid: str
    name: str
    code: str = ""


@dataclass(slots=True)
class Contact:
    uuid: str
    name: str
    email: str = ""
    mobile: str = ""
    phone: str = ""
    position: str = ""
    salutation: str = ""
    addressee: str = ""
    is_primary: bool = False
    is_deleted: bool = False


@dataclass(slots=True)
class Relationship:
    uuid: str
    type: str
    related_uuid: str
    related_name: str
    number_of_shares: int | None = None
    percentage: Decimal | None = None
    start_date: date | None = None
    end_date: date | None = None


@dataclass(slots=True)
class Note:
    """A client note. Since 18 August 2025 XPM answers `Folder` empty and names the note's tag in `Tag`."""

    title: str
    text: str
    date: datetime
    created_by: str
    tag: str = ""


@dataclass(slots=True)
class Group:
    uuid: str
    name: str
    taxable: bool = False
    members: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Client:
    uuid: str
    name: str
    modified_at: datetime
    title: str = ""
    gender: str = ""
    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""
    other_name: str = ""
    email: str = ""
    date_of_birth: date | None = None
    date_of_death: date | None = None
    place_of_birth_city: str = ""
    place_of_birth_country_code: str = ""
    address: str = ""
    city: str = ""
    region: str = ""
    post_code: str = ""
    country: str = ""
    postal_address: str = ""
    postal_city: str = ""
    postal_region: str = ""
    postal_post_code: str = ""
    postal_country: str = ""
    phone: str = ""
    fax: str = ""
    website: str = ""
    referral_source: str = ""
    export_code: str = ""
    industry: str = ""
    is_prospect: bool = False
    is_archived: bool = False
    is_deleted: bool = False
    account_manager_uuid: str = ""
    job_manager_uuid: str = ""
    client_type: str = ""
    billing_client_uuid: str = ""
    tax_number: str = ""
    company_number: str = ""
    business_number: str = ""
    business_structure: str = ""
    balance_month: int | None = None
    gst_registered: bool = False
    prepare_gst: bool = False
    gst_period: str = ""
    gst_basis: str = ""
    provisional_tax_basis: str = ""
    provisional_tax_ratio: Decimal | None = None
    signed_tax_authority: bool = False
    tax_agent: str = ""
    agency_status: str = ""
    return_type: str = ""
    prepare_activity_statement: bool = False
    prepare_tax_return: bool = False
    branch_number: str = ""
    bank_bsb: str = ""
    bank_account_name: str = ""
    bank_account_number: str = ""
    bank_name: str = ""
    active_ato_client: bool = False
    client_code: str = ""
    contacts: list[Contact] = field(default_factory=list)
    group_uuids: list[str] = field(default_factory=list)
    relationships: list[Relationship] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    custom_fields: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Task:
    uuid: str
    name: str
    task_uuid: str
    estimated_minutes: int = 0
    actual_minutes: int = 0
    description: str = ""
    completed: bool = False
    billable: bool = True
    folder: str = ""
    start_date: date | None = None
    due_date: date | None = None
    assigned: list[tuple[str, int]] = field(default_factory=list)  # (staff uuid, allocated minutes)


@dataclass(slots=True)
class Milestone:
    uuid: str
    date: date
    description: str
    completed: bool = False
    folder: str = ""


@dataclass(slots=True)
class TimeEntry:
    uuid: str
    job_number: str
    task_uuid: str
    staff_uuid: str
    date: date
    minutes: int
    note: str = ""
    billable: bool = True
    start: str = ""
    end: str = ""
    invoice_task_uuid: str = ""


@dataclass(slots=True)
class Cost:
    uuid: str
    job_number: str
    date: date
    description: str
    quantity: Decimal
    unit_cost: Decimal
    unit_price: Decimal
    code: str = ""
    note: str = ""
    billable: bool = True
    supplier_uuid: str = ""
    supplier_name: str = ""


@dataclass(slots=True)
class Payment:
    date: date
    amount: Decimal
    reference: str = ""


@dataclass(slots=True)
class Invoice:
    """An invoice of one client for one or more jobs; `Approved` ones with money owing are current."""

    number: str
    uuid: str
    client_uuid: str
    due_date: date  # before `date`, which names the type no more once it is a field
    date: date
    amount: Decimal
    tax: Decimal
    status: str = "Approved"
    type: str = "Progress Invoice"
    description: str = ""
    job_numbers: list[str] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    task_lines: dict[str, str] = field(default_factory=dict)  # job task uuid -> its invoice line's uuid

    @property
    def paid(self) -> Decimal:
        return sum((p.amount for p in self.payments), Decimal(0))

    @property
    def total(self) -> Decimal:
        return self.amount + self.tax


@dataclass(slots=True)
class Quote:
    number: str
    client_uuid: str
    name: str
    valid_date: date  # before `date`, as above
    date: date
    amount: Decimal
    tax: Decimal
    estimated_cost: Decimal
    state: str = "Issued"
    type: str = "Quote"
    description: str = ""
    budget: Decimal | None = None


OPEN_QUOTES = frozenset({"Draft", "Issued"})


@dataclass(slots=True)
class Template:
    uuid: str
    name: str
    tasks: list[tuple[str, str]] = field(default_factory=list)  # (task type uuid, task name)


@dataclass(slots=True)
class Job:
    number: str
    uuid: str
    name: str
    client_uuid: str
    state: str
    created_on: date
    start_date: date
    due_date: date
    description: str = ""
    client_order_number: str = ""
    budget: Decimal | None = None
    job_type: str = ""
    completed_date: date | None = None
    internal_id: str = ""
    manager_uuid: str = ""
    partner_uuid: str = ""
    contact_uuid: str = ""
    category_uuid: str = ""
    assigned: list[str] = field(default_factory=list)  # staff uuids; minutes are allocated per task
    tasks: list[Task] = field(default_factory=list)
    milestones: list[Milestone] = field(default_factory=list)
    custom_fields: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class FieldDefinition:
    uuid: str
    name: str
    type: str
    value_element: str
    use_client: bool
    use_job: bool
    options: str = ""
    link_url: str = ""


CLOSED_STATES = frozenset({"Completed", "Cancelled"})


@dataclass
class Practice:
    """One XPM practice (tenant) and everything in it."""

    tenant_id: str
    name: str
    active: bool = True
    staff: dict[str, Staff] = field(default_factory=dict)
    categories: dict[str, Named] = field(default_factory=dict)
    job_states: dict[str, Named] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    field_definitions: dict[str, FieldDefinition] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    task_types: dict[str, str] = field(default_factory=dict)  # task name -> its TaskUUID
    times: dict[str, TimeEntry] = field(default_factory=dict)
    costs: dict[str, Cost] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    quotes: dict[str, Quote] = field(default_factory=dict)
    # Indexes of the above: costs by job number, time entries by job task uuid.
    costs_by_job: dict[str, list[Cost]] = field(default_factory=dict)
    times_by_task: dict[str, list[TimeEntry]] = field(default_factory=dict)

    def state_by_code(self, code: str) -> Named | None:
        """The job state whose interface code is `code`."""
        return next((s for s in self.job_states.values() if s.code == code), None)

    def is_current(self, job: Job) -> bool:
        return job.state not in CLOSED_STATES

    def invoice_is_current(self, invoice: Invoice) -> bool:
        return invoice.status == "Approved" and invoice.paid < invoice.total

    def contact(self, contact_uuid: str) -> Contact | None:
        """A contact of any client, by its UUID."""
        return next((k for c in self.clients.values() for k in c.contacts if k.uuid == contact_uuid), None)
