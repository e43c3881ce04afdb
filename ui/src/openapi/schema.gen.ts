// Generated from the server's /openapi.json by ui/scripts/openapi-types.mjs
// (`cargo xtask ui-types`). Do not edit: a test fails when this file is stale.

/** A page of actions. */
export type ActionList = {
  /** Newest first. */
  actions: ActionView[];
  /**
   * Actions left out because their stored state cannot be read (written by another
   * version, edited or damaged); the log and `cfactory doctor` name each.
   */
  unreadable: number;
};

/** A proposal: what it will send, why, and where it is in its life. */
export type ActionView = {
  /** The WorkItem. */
  correlation_key: string;
  /** When it was proposed. */
  created_at: string;
  /** Who confirmed or rejected it; null while it waits or after it expired. */
  decided_by?: string | null;
  /** Through which door it was confirmed or rejected. */
  decided_via?: string | null;
  /** The first step's endpoint. */
  endpoint: string;
  /** When it stops being confirmable. */
  expires_at: string;
  /** Steps after the first, each sent only if the one before succeeded. */
  follow_ups: StepView[];
  /** The action's id (`act_…`). */
  id: string;
  /**
   * `approve_gate`, `emit_issues`, `trigger_handoff`, `kick_handback`, `recover`,
   * `recover_and_restart` or `reject_review`.
   */
  kind: string;
  /** The first step's method. */
  method: string;
  /** The proposer's note. */
  note?: string | null;
  /** The first step's body. */
  payload: Record<string, unknown> | null;
  /** Who proposed it (`key:…` or `local`). */
  proposed_by: string;
  /**
   * Through which door it was proposed (`ui`, `api`, `copilot`, `mcp`); null on
   * actions stored before doors were kept.
   */
  proposed_via?: string | null;
  /** Why this call. */
  rationale: string;
  /** Each executed step's result, in order. */
  results: StepResultView[];
  /** `prepared`, `executing`, `executed`, `failed`, `rejected` or `expired`. */
  status: string;
  /** `pfactory`, `aifactory` or `tfactory`. */
  target_service: string;
  /** Its tenant. */
  tenant: string;
};

/** One event of the feed. */
export type ActivityItem = {
  /** The item the event is on (its key after any merge). */
  correlation_key: string;
  /** The event's id, if it had one. */
  id?: string | null;
  /** When CFactory received it. */
  received_at: string;
  /** Arrival order; newer is larger. */
  seq: number;
  /** The sender. */
  service: string;
  /** The status as sent. */
  status: string;
  /** The sender's task. */
  task_id: string;
  /** The event's own time. */
  time: string;
  /** The item's title, when it has one. */
  title?: string | null;
};

/** The feed page. */
export type ActivityPage = {
  /** Newest first. */
  items: ActivityItem[];
  /** The next (older) page's cursor, or null on the last page. */
  next_cursor?: string | null;
  /**
   * Events of this page left out because their stored row cannot be read (the log
   * names each).
   */
  unreadable: number;
};

/** The published contract's advise request: `intent` names the action. */
export type AdviseBody = {
  /** The WorkItem. */
  correlation_key: string;
  /** The action kind (or its propose tool's name). */
  intent: string;
  /** Why, in the person's words. */
  prompt?: string | null;
};

/** An action with the published contract's `summary` and `preview` beside it. */
export type AdvisedAction = ActionView & {
  /** What a confirm sends first. */
  preview: Preview;
  /** The rationale, under the contract's name. */
  summary: string;
};

/** Anomalies, most severe first. */
export type AnomalyList = {
  /** The first `limit` of them. */
  anomalies: Array<Record<string, unknown>>;
  /** How many match in all. */
  count: number;
  /** Items left out because their stored state cannot be read (the log names each). */
  unreadable: number;
};

/** An attribute of a schema. */
export type AttributeDoc = {
  /** Whether its values compare with regard to case. */
  caseExact: boolean;
  /** What it is. */
  description: string;
  /** Whether it holds a list. */
  multiValued: boolean;
  /** `readWrite`, `readOnly`, `immutable`. */
  mutability: string;
  /** Its name. */
  name: string;
  /** For a reference: what it refers to. */
  referenceTypes?: string[];
  /** Whether a request must give it. */
  required: boolean;
  /** `always`, `default`. */
  returned: string;
  /** For a complex attribute: its parts. */
  subAttributes?: AttributeDoc[];
  /** `string`, `boolean`, `complex`, `reference`, `dateTime`. */
  type: string;
  /** `none` or `server`. */
  uniqueness: string;
};

/** A page of entries, newest first. */
export type AuditPage = {
  /** The entries. */
  entries: Array<Record<string, unknown>>;
  /** The next (older) page's cursor, or null on the last page. */
  next_cursor?: string | null;
};

/** How one may sign in to this server. */
export type AuthMethods = {
  /** Whether API keys sign in (`POST /api/session`): always, for automation. */
  key: boolean;
  sso?: null | SsoMethod;
};

/** How a client authenticates. */
export type AuthSchemeDoc = {
  /** What to send. */
  description: string;
  /** Its name. */
  name: string;
  /** Whether it is the one to use. */
  primary: boolean;
  /** `oauthbearertoken`. */
  type: string;
};

/** The sender's budget as its latest usage reported it. */
export type BudgetState = {
  /** The time of the event that reported it. */
  at: string;
  /** Whether the sender says the budget is exceeded. */
  exceeded: boolean;
  /** The limit, in dollars. */
  limit_usd: number | null;
  /** What the sender counts as spent. */
  spent_usd: number | null;
};

/** Bulk's limits (bulk is not offered). */
export type BulkDoc = {
  /** Always 0. */
  maxOperations: number;
  /** Always 0. */
  maxPayloadSize: number;
  /** Always false. */
  supported: boolean;
};

/** One insight card; see [`cfactory_domain::insights::cards`]. */
export type Card = {
  /** The item it is about, when one. */
  correlation_key?: string | null;
  /** A sentence with the figures. */
  detail: string;
  /** Stable per finding: `anomaly:{kind}:{key}`, `needs_you` or `spend`. */
  id: string;
  /** An anomaly kind, `needs_you` or `spend`. */
  kind: string;
  /** `info`, `warning` or `high`. */
  severity: string;
  suggested?: null | CardSuggestion;
  /** One line. */
  title: string;
};

/** The insight cards. */
export type CardList = {
  /** Anomaly cards (loudest first), then needs-you, then spend. */
  cards: Card[];
  /** Items left out because their stored state cannot be read (the log names each). */
  unreadable: number;
};

/** A proposal a card suggests. */
export type CardSuggestion = {
  /** For which item. */
  correlation_key: string;
  /** The action kind to propose. */
  kind: string;
  /** The button's text. */
  label: string;
};

/**
 * The chain checked against the anchor file, where each append is noted outside the
 * store.
 */
export type ChainAnchor = {
  /** The place of the newest entry the anchor saw appended. */
  anchored_seq: number;
  /** The place of the chain's newest entry now (0 when it is empty). */
  chain_seq: number;
  /** What that means. */
  state: ChainAnchorState;
};

/**
 * How the chain compares with its anchor: `ok`, `truncated` (no entry at the anchored
 * place) or `rolled_back` (another entry there).
 */
export type ChainAnchorState = 'ok' | 'truncated' | 'rolled_back';

/** One finding: the row and what is wrong with it. */
export type ChainFinding = {
  /** The row's id (0 for the head when the chain is empty). */
  id: number;
  /** What is wrong with it. */
  kind: ChainFindingKind;
};

/**
 * What is wrong with one row (or the head): `altered` (its fields no longer match its
 * seal), `broken_link` (it does not follow the row before it), `fork` (it shares its
 * place with another row), `truncated` (the head counts rows that are gone, or its last
 * hash is not the newest row's), `head_altered` (the head's own seal does not match).
 */
export type ChainFindingKind = 'altered' | 'broken_link' | 'fork' | 'truncated' | 'head_altered';

/** The verdict over a tenant's whole audit chain, each finding naming its row. */
export type ChainReport = {
  anchor: null | ChainAnchor;
  /** Every finding, in chain order. */
  findings: ChainFinding[];
  /** Rows checked. */
  rows: number;
  /** The verdict. */
  verdict: ChainVerdict;
};

/**
 * A chain's verdict: `ok` (every row and the head check out), `tampered` (a row was
 * edited or deleted, or the head does not match the rows), `forked` (two rows claim the
 * same place), `truncated` (the chain ends before the newest entry its anchor saw
 * appended) or `rolled_back` (the entry at the anchored place is another one).
 */
export type ChainVerdict = 'ok' | 'tampered' | 'forked' | 'truncated' | 'rolled_back';

/** A chat turn. */
export type ChatBody = {
  /** The conversation to continue; a new one when absent. */
  conversation_id?: string | null;
  /** The person's message. */
  message: string;
};

/** The turn's end (`done`): the answer exactly as the JSON answer has it, and its cost. */
export type ChatDone = {
  /**
   * The turn's tokens at the model's list price in US dollars; null for a model
   * without a known price.
   */
  cost_usd?: number | null;
  /** The same object `Accept: application/json` answers. */
  turn: ChatTurn;
};

/** The first event of a streamed copilot turn (`start`). */
export type ChatStart = {
  /** The conversation to continue with the next message (also after a stop). */
  conversation_id: string;
  /** The model answering, as `provider:model`. */
  model: string;
};

/**
 * One event of a streamed copilot turn: its SSE `event:` name and its `data:` JSON. A
 * turn sends `start`, then `text`, `tool_start`, `tool_end` and `proposal` as they
 * happen, and ends with `done` or `error` (a problem document with the status the JSON
 * answer would have had).
 */
export type ChatStreamEvent = {
  /** The turn started. */
  data: ChatStart;
  event: 'start';
} | {
  /** More text. */
  data: ChatText;
  event: 'text';
} | {
  /** A tool call started. */
  data: ChatToolStart;
  event: 'tool_start';
} | {
  /** A tool call finished. */
  data: ChatToolEnd;
  event: 'tool_end';
} | {
  /** An action was prepared; it waits for a person's confirm. */
  data: ActionView;
  event: 'proposal';
} | {
  /** The turn ended with an answer. */
  data: ChatDone;
  event: 'done';
} | {
  /** The turn failed. */
  data: ProblemDoc;
  event: 'error';
};

/** More of the model's text (`text`). */
export type ChatText = {
  /** The text to append. */
  delta: string;
  /**
   * The model call it belongs to, from 1; each call's text starts afresh, and the
   * answer is the last call's.
   */
  step: number;
};

/** A tool call finished, or will not run (`tool_end`). */
export type ChatToolEnd = {
  /** The model's id for the call. */
  id: string;
  /** The tool. */
  name: string;
  /** Whether it succeeded. */
  ok: boolean;
  /** One line on what it did or why it failed. */
  summary: string;
};

/** The model called a tool (`tool_start`); it runs once the model's answer is complete. */
export type ChatToolStart = {
  /** The model's id for the call. */
  id: string;
  /** The tool. */
  name: string;
};

/** One copilot turn. */
export type ChatTurn = {
  /** The model's answer, or what stopped it. */
  answer: string;
  /** The conversation to continue with the next message. */
  conversation_id: string;
  /** How the turn ended (`answered`, `step_limit`, …). */
  end: string;
  /** Actions proposed this turn, stored as prepared; a confirm sends them. */
  proposals: ActionView[];
  /** Model calls made. */
  steps: number;
  /** This turn's tool calls (name, input, result summary). */
  trace: Array<Record<string, unknown>>;
  /** Tokens used. */
  usage: Record<string, unknown>;
};

/** A confirmed action, as it ended (`executed` or `failed`). */
export type Confirmed = {
  /** The action with each step's result. */
  action: AdvisedAction;
};

/** Two issue numbers claimed one unit of work; the event stayed on its own key. */
export type CorrelationConflict = {
  /** The event's time. */
  at: string;
  /** The event that carried the conflict. */
  event_id: string | null;
  /** The issue numbers that disagreed. */
  issue_numbers: number[];
  /** Why, when it is not two numbers disagreeing. */
  reason?: string | null;
};

/** How many entries each breakdown had before it was cut to `top`. */
export type CostCounts = {
  by_billing_mode: number;
  by_model: number;
  by_provider: number;
  by_service: number;
  by_worker: number;
  by_workitem: number;
};

/** How many items need a person. */
export type Count = {
  /** The count. */
  count: number;
  /** Items left out because their stored state cannot be read (the log names each). */
  unreadable: number;
};

/** Metadata of a discovery resource. */
export type DiscoveryMeta = {
  /** Its address. */
  location: string;
  /** Its kind. */
  resourceType: string;
};

/** An email of a User (this server keeps one: the primary). */
export type EmailDoc = {
  /** The address. */
  value: string;
};

/** Filtering's limits. */
export type FilterDoc = {
  /** The most resources one list answers. */
  maxResults: number;
  /** Always true. */
  supported: boolean;
};

/** The tenant's groups. */
export type GroupList = {
  /** Oldest first. */
  groups: GroupView[];
};

/** A member of a group. */
export type GroupMemberView = {
  /** The user's id (`usr_…`). */
  id: string;
  /** How the user is named: email, else display name, else subject. */
  label: string;
};

/** A SCIM Group. */
export type GroupResource = {
  /** Unique within the tenant without regard to case. */
  displayName: string;
  /** The client's id for the group. */
  externalId?: string | null;
  /** CFactory's id (`grp_…`). */
  id: string;
  /** Its members. */
  members: MemberDoc[];
  /** Metadata. */
  meta: Meta;
  /** `["urn:ietf:params:scim:schemas:core:2.0:Group"]`. */
  schemas: string[];
};

/** A provisioned group. */
export type GroupView = {
  /** Its name. */
  display_name: string;
  /** The provisioning client's own id for it. */
  external_id?: string | null;
  /** Its id (`grp_…`). */
  id: string;
  /** Its members. */
  members: GroupMemberView[];
  /**
   * The scopes the `[roles]` table maps its name to (empty: none, or single sign-on
   * is not configured).
   */
  scopes: string[];
};

/** Ingest findings kept on the item so anomalies can surface them. */
export type IngestFlags = {
  /** Correlation conflicts seen (all of them). */
  correlation_conflict_count: number;
  /** The most recent conflicts. */
  correlation_conflicts: CorrelationConflict[];
  /** Events recorded without an `id`. */
  missing_event_id: number;
};

/** One event's result. */
export type IngestResult = {
  /** The canonical key of the WorkItem the event is on. */
  correlation_key: string;
  /** `accepted` (newly committed) or `duplicate` (already held under this id). */
  status: string;
};

/** A prompt-injection scan verdict. Absence means no scan ran, never a pass. */
export type InjectionScan = {
  /** What was flagged, or why the scan was skipped. */
  reason?: string | null;
  /** Scanner id. */
  scanner?: string | null;
  /** Untrusted sources inspected; left out when none. */
  sources_scanned?: string[];
  /** `pass`, `flagged` or `skipped`. */
  verdict: string;
};

/** An item's proposals and what it allows now. */
export type ItemActionsView = {
  /** Its proposals, newest first. */
  actions: ActionView[];
  /** Action kinds its state allows now. */
  available: string[];
  /** The item's canonical key. */
  correlation_key: string;
};

/** JSON-RPC's version. */
export type JsonRpcVersion = '2.0';

/** The chain links known for an item. */
export type Links = {
  /** AIFactory tasks. */
  aifactory_task_ids: string[];
  /** Git branch. */
  branch: string | null;
  /** Issues PFactory created for this unit (its epic and children): links, not units. */
  emitted_issues: number[];
  /** GitHub issue number. */
  issue_number: number | null;
  /** Pull request. */
  pr_number: number | null;
  /** The GitHub repository of the issue, when a sender named it. */
  repo: string | null;
  /** PFactory plan session. */
  session_id: string | null;
  /** TFactory specs. */
  tfactory_spec_ids: string[];
};

/** A list answer. */
export type ListResponse = {
  /** This page's resources. */
  Resources: Array<Record<string, unknown>>;
  /** How many this page holds. */
  itemsPerPage: number;
  /** `["urn:ietf:params:scim:api:messages:2.0:ListResponse"]`. */
  schemas: string[];
  /** The 1-based index of this page's first resource. */
  startIndex: number;
  /** How many resources match, over all pages. */
  totalResults: number;
};

/** One item whose agent's terminal can be watched now. */
export type LiveAgent = {
  /** The WorkItem's key: open its console at `/api/live-agents/{correlation_key}/ws`. */
  correlation_key: string;
  /** The service that runs the agent. */
  service: string;
  /** When the item's stage of that service started. */
  started_at: string;
  /** The task's status as the service reports it. */
  status: string;
  /** The service's task id. */
  task_id: string;
  /** The item's title, else the task's. */
  title?: string | null;
};

/** The caller's tenant's live agent consoles. */
export type LiveAgentList = {
  /** The items whose agent runs now with a console, newest stage first. */
  agents: LiveAgent[];
  /**
   * Why consoles are off or the list may be incomplete (a service that does not
   * serve them, or could not be asked), or null.
   */
  detail?: string | null;
  /**
   * Whether a configured service serves agent consoles now (AIFactory's `rmux`
   * capability).
   */
  enabled: boolean;
};

/** Whether an item is alive, computed at read time against the clock. */
export type Liveness = {
  active_stage: null | StageName;
  /** Seconds since the latest stage activity. */
  last_activity_age_seconds: number | null;
  /** A running or stuck stage silent past the stall deadline. */
  stalled: boolean;
};

/**
 * A JSON-RPC 2.0 message to `/mcp` as the OpenAPI document describes it; the SDK parses
 * and checks the real thing.
 */
export type McpMessage = {
  /** The request's id (a string is taken too); absent on a notification. */
  id?: number | null;
  /** The JSON-RPC version. */
  jsonrpc: JsonRpcVersion;
  /** What is asked, or notified. */
  method: McpMethod;
  /** The method's parameters: for `tools/call`, `{"name", "arguments"}`. */
  params?: Record<string, unknown> | null;
};

/** The methods this server answers, and the notification clients send. */
export type McpMethod = 'initialize' | 'server/discover' | 'ping' | 'tools/list' | 'tools/call' | 'notifications/initialized';

/** A member of a Group. */
export type MemberDoc = {
  /** The member's address. */
  $ref: string;
  /** The member's user id. */
  value: string;
};

/** A resource's metadata. */
export type Meta = {
  /** When it was made. */
  created: string;
  /** When it last changed. */
  lastModified: string;
  /** Its address. */
  location: string;
  /** `User` or `Group`. */
  resourceType: string;
  /** A weak version tag that changes with every change. */
  version: string;
};

/** A User's name. */
export type NameDoc = {
  /** Family name. */
  familyName?: string | null;
  /** The whole name. */
  formatted?: string | null;
  /** Given name. */
  givenName?: string | null;
};

/** Items waiting on a person. */
export type NeedsList = {
  /** How many in all. */
  count: number;
  /** The most urgent first. */
  items: Array<Record<string, unknown>>;
  /** Items left out because their stored state cannot be read (the log names each). */
  unreadable: number;
};

/** One PATCH operation. */
export type PatchOperation = {
  /** `add`, `replace` or `remove`, in any case. */
  op: string;
  /** Where it acts; without one, `value` holds attributes by name. */
  path?: string | null;
  /** What to add or replace with. */
  value: Record<string, unknown>;
};

/** A PATCH request body. */
export type PatchRequest = {
  /** The operations, applied in order. */
  Operations: PatchOperation[];
  /** Must hold `urn:ietf:params:scim:api:messages:2.0:PatchOp`. */
  schemas: string[];
};

/** What a confirm would send, for the published advise contract. */
export type Preview = {
  /** The first step's endpoint. */
  endpoint: string;
  /** The steps after it. */
  follow_ups: StepView[];
  /** The first step's method. */
  method: string;
  /** The first step's body. */
  payload: Record<string, unknown> | null;
};

/** An `application/problem+json` body (RFC 9457). */
export type ProblemDoc = {
  /** What went wrong with this request. */
  detail: string;
  /** The offending field or parameter, for 422s. */
  field?: string | null;
  /** The HTTP status. */
  status: number;
  /** A short summary of the kind. */
  title: string;
  /** A URI naming the kind of problem. */
  type: string;
};

/** An item's execution graph, or why there is none. */
export type ProcessAnswer = {
  /** Whether a graph came back. */
  available: boolean;
  /** The graph's nodes. */
  nodes?: Array<Record<string, unknown>> | null;
  /** Why not, when not. */
  reason?: string | null;
  /** The service that runs the stage. */
  service?: string | null;
  /** The stage. */
  stage?: string | null;
  /** The upstream's task id. */
  task_id?: string | null;
};

/**
 * Whether a stage's success is backed by evidence: `proven` (a done-class status with
 * the evidence its stage owes), `unproven` (without it), `not_applicable` (not done).
 */
export type Proof = 'proven' | 'unproven' | 'not_applicable';

/** A proposal request. */
export type ProposeBody = {
  /** The WorkItem. */
  correlation_key: string;
  /**
   * approve_gate, emit_issues, trigger_handoff, kick_handback, recover,
   * recover_and_restart or reject_review.
   */
  kind: string;
  /** Why, in the person's words (goes into the payload where the upstream takes one). */
  note?: string | null;
};

/** A group of a User. */
export type RefDoc = {
  /** Its address. */
  $ref: string;
  /** How it is named. */
  display: string;
  /** Always `direct`. */
  type: string;
  /** The referenced resource's id. */
  value: string;
};

/** A rejected action. */
export type Rejected = {
  /** The action, now `rejected`. */
  action: ActionView;
};

/** A resource type. */
export type ResourceTypeDoc = {
  /** What it is. */
  description: string;
  /** Where its resources are, relative to `/scim/v2`. */
  endpoint: string;
  /** `User` or `Group`. */
  id: string;
  /** Metadata. */
  meta: DiscoveryMeta;
  /** The same. */
  name: string;
  /** Its core schema's URN. */
  schema: string;
  /** Its schema. */
  schemas: string[];
};

/** The `[roles]` table. */
export type RoleList = {
  /** By group name. */
  roles: RoleView[];
  /** Whether single sign-on is configured (without it the table is empty). */
  sso: boolean;
};

/** One row of the `[roles]` table. */
export type RoleView = {
  /** The group name (from the sign-in's groups claim or a provisioned group). */
  group: string;
  /** The scopes it grants, sorted. */
  scopes: string[];
};

/** What a poll round did. */
export type RoundList = {
  /** Per service: its health and how many tasks were read and filed. */
  services: Array<Record<string, unknown>>;
};

/** One run's last usage figure, for services whose task usage is the sum of its runs. */
export type RunFigure = {
  /** The run's usage so far (its total once ended). */
  amounts: UsageAmounts;
  /** The time of the figure kept. */
  at: string;
  /** The time of the run's terminal event; null while the run is still going. */
  ended_at: string | null;
};

/** A schema. */
export type SchemaDoc = {
  /** Its attributes. */
  attributes: AttributeDoc[];
  /** What it describes. */
  description: string;
  /** Its URN. */
  id: string;
  /** Metadata. */
  meta: DiscoveryMeta;
  /** `User` or `Group`. */
  name: string;
  /** Its schema. */
  schemas: string[];
};

/** A SCIM error body. */
export type ScimErrorDoc = {
  /** What went wrong. */
  detail: string;
  /** Always `["urn:ietf:params:scim:api:messages:2.0:Error"]`. */
  schemas: string[];
  /**
   * The kind of error the RFC names (`uniqueness`, `invalidFilter`, `invalidValue`,
   * `invalidSyntax`, `noTarget`, `mutability`, `invalidPath`, `tooMany`), when it names one.
   */
  scimType?: string | null;
  /** The HTTP status, as a string. */
  status: string;
};

/** Search results, best first. */
export type SearchResults = {
  /** Results returned. */
  count: number;
  /** The query as searched. */
  query: string;
  /** Exact key matches first, then prefixes, then substrings; each says what matched. */
  results: Array<Record<string, unknown>>;
  /** Items left out because their stored state cannot be read (the log names each). */
  unreadable: number;
};

/** A service's wire name. */
export type Service = string;

/** The watched services. */
export type ServiceList = {
  /**
   * Each with `service`, `url`, `configured`, `token_set`, `health` and its live
   * `feeds`; never a token.
   */
  services: Array<Record<string, unknown>>;
};

/** The ServiceProviderConfig. */
export type ServiceProviderConfig = {
  /** How to authenticate. */
  authenticationSchemes: AuthSchemeDoc[];
  /** Bulk: not offered. */
  bulk: BulkDoc;
  /** Changing passwords: not offered. */
  changePassword: Supported;
  /** Where the SCIM documentation is. */
  documentationUri: string;
  /** ETags: not offered (`meta.version` is informative). */
  etag: Supported;
  /** Filtering: `eq` on the attributes the docs list. */
  filter: FilterDoc;
  /** Metadata. */
  meta: DiscoveryMeta;
  /** PATCH: offered. */
  patch: Supported;
  /** Its schema. */
  schemas: string[];
  /** Sorting: not offered. */
  sort: Supported;
};

/** A person signed in by single sign-on, as the session shows them. */
export type SessionUser = {
  /** Their email, as the identity provider last said. */
  email?: string | null;
  /** Their groups, as the identity provider last said. */
  groups: string[];
  /** Their CFactory id (`usr_…`). */
  id: string;
  /** How the cockpit names them: the email, else the display name, else the subject. */
  name: string;
};

/** Who the caller is. */
export type SessionView = {
  /** Whether the server has no keys at all. */
  open_mode: boolean;
  /** What the caller may do. */
  scopes: string[];
  /** The tenant. */
  tenant: string;
  user?: null | SessionUser;
};

/** A new base URL for a service, and optionally its token. */
export type SetUrl = {
  /**
   * The bearer token for the URL's origin. Absent: the current token is kept if the
   * origin stays the same and dropped if it changes. Empty: no token is sent.
   */
  token?: string | null;
  /** An absolute http:// or https:// URL. */
  url: string;
};

/** A sign-in request. */
export type SignIn = {
  /** The API key. */
  key: string;
};

/** Single sign-on, as the sign-in page offers it. */
export type SsoMethod = {
  /** Where the browser goes to start it (add `?return_to=/path` to come back there). */
  login_url: string;
};

/**
 * One stage: the event with the latest `time` that its service sent for this item (or
 * what the service's API said, when `from_api`).
 */
export type Stage = {
  /** Its time. */
  at: string;
  /** The shown event's id. */
  event_id?: string | null;
  /**
   * Present (and `true`) when the stage shows what the service's API said (a poll or
   * a live frame) rather than a completion event.
   */
  from_api?: boolean;
  /** TFactory's halt reason. */
  halt_reason?: string | null;
  injection_scan?: null | InjectionScan;
  /** TFactory's outcome. */
  outcome?: string | null;
  /** Its phase. */
  phase: string;
  /** The latest worker report or heartbeat of the shown task, when later than `at`. */
  progress_at?: string | null;
  /** Evidence gate result. */
  proof: Proof;
  /** When CFactory received the shown event (breaks ties between equal times). */
  received_at: string;
  /** Why the task waits in review, as its service says (AIFactory's `review_reason`). */
  review_reason?: string | null;
  /** When the stage's first event happened. */
  started_at: string;
  /** Its status as sent. */
  status: string;
  /** Its status class. */
  status_class: StatusClass;
  /** The task the shown event came from. */
  task_id: string;
  /** The stage's usage (all of its service's tasks on this item). */
  usage: UsageAmounts;
  verification?: null | Verification;
};

/** A stage's API spelling. */
export type StageName = string;

/**
 * The family's three stages, null where the stage has not started; a service registered
 * beside them adds its stage by name once it has started.
 */
export type Stages = {
  code: null | Stage;
  plan: null | Stage;
  test: null | Stage;
};

/**
 * The lifecycle class of a status: `failed` and `done` are terminal, `review` waits on
 * a decision, `queued` has not started, `running` executes (or is unknown), `stuck` was
 * marked so by an upstream.
 */
export type StatusClass = 'failed' | 'done' | 'review' | 'queued' | 'running' | 'stuck';

/** What one executed step got back. */
export type StepResultView = {
  /** How long the call took. */
  duration_ms: number;
  /** The endpoint called. */
  endpoint: string;
  /** Why it failed. */
  error?: string | null;
  /** The method sent. */
  method: string;
  /** A 2xx without `"success": false`. */
  ok: boolean;
  /** The upstream's answer as JSON (`null` when none or not JSON). */
  response: Record<string, unknown> | null;
  /** The HTTP status, when an answer came. */
  status_code?: number | null;
};

/** One request of an action. */
export type StepView = {
  /** Root-relative on the target service. */
  endpoint: string;
  /** `GET`, `POST`, `PUT`, `PATCH` or `DELETE`. */
  method: string;
  /**
   * The JSON body (`null`: none); may hold `{{approver}}`/`{{confirmed_at}}`
   * placeholders filled at confirm.
   */
  payload: Record<string, unknown> | null;
};

/** Whether a feature is offered. */
export type Supported = {
  /** Whether it is. */
  supported: boolean;
};

/**
 * One task's usage: the running total of its current run plus the totals of the runs
 * before it (a correction after a handback starts a new run).
 */
export type TaskUsage = {
  /** The time of the event the current run's total came from. */
  at: string;
  /** The current run's running total. */
  current: UsageAmounts;
  /** Earlier runs' totals. */
  earlier_runs: UsageAmounts;
  /** The model the latest usage named. */
  model: string | null;
  /** The phase of the event the current total came from. */
  phase: string | null;
  /**
   * Each run's last figure, oldest first, for services that sum their runs; left out
   * when there is none.
   */
  run_figures?: RunFigure[];
  /** How many runs were seen. */
  runs: number;
  /** The service. */
  service: Service;
  /** The service's task id. */
  task_id: string;
  /**
   * Per-worker usage of the latest event (provider, model, billing mode); left out
   * when there is none.
   */
  workers?: WorkerUsage[];
};

/** One recorded event. */
export type TimelineEvent = {
  /** The event JSON exactly as received, unknown fields included. */
  event: Record<string, unknown>;
  /** The event's id, if it had one. */
  id?: string | null;
  /** When CFactory received it. */
  received_at: string;
  /** Arrival sequence. */
  seq: number;
  /** The sender. */
  service: string;
  /** The status as sent. */
  status: string;
  /** The sender's task. */
  task_id: string;
  /** The event's time. */
  time: string;
};

/** A page of an item's timeline. */
export type TimelinePage = {
  /** The item's canonical key. */
  correlation_key: string;
  /** Events on the item in all. */
  event_count: number;
  /** This page, oldest first. */
  events: TimelineEvent[];
  /** The next page's cursor, or null on the last page. */
  next_cursor?: string | null;
  /** Seconds from the earliest to the latest event. */
  span_seconds: number;
  /**
   * Events of this page left out because their stored row cannot be read (counted in
   * `event_count`; the log and `cfactory doctor` name each).
   */
  unreadable: number;
};

/** Cost and tokens alone. */
export type TokensBody = {
  cost: Record<string, unknown>;
  cost_group_counts: CostCounts;
  daily: Array<Record<string, unknown>>;
  /** Items left out because their stored state cannot be read (the log names each). */
  unreadable: number;
  window: Record<string, unknown>;
};

/** Tokens and dollars: the same fields everywhere usage appears. */
export type UsageAmounts = {
  /** Metered dollars (billing modes `api` and `cloud`, or usage with no mode): spend. */
  cost_usd: number;
  /** Prompt tokens. */
  input_tokens: number;
  /** Dollars a subscription or local worker reported: shown, never added to spend. */
  notional_cost_usd: number;
  /** Completion tokens. */
  output_tokens: number;
  /** Total tokens. */
  total_tokens: number;
};

/** One usage group. */
export type UsageRowDoc = {
  /** Metered dollars: spend. */
  cost_usd: number;
  /** Prompt tokens. */
  input_tokens: number;
  /** The group (null when events did not say). */
  key?: string | null;
  /** Dollars subscription or local workers reported: shown apart, never spend. */
  notional_cost_usd: number;
  /** Completion tokens. */
  output_tokens: number;
  /** All tokens. */
  total_tokens: number;
};

/** What `PATCH /api/users/{id}` changes. */
export type UserChange = {
  /** Whether they may sign in; `false` ends their sessions at once. */
  active: boolean;
};

/** A provisioned group a person is a member of. */
export type UserGroupView = {
  /** The group's name, which the `[roles]` table maps. */
  display_name: string;
  /** The group's id (`grp_…`). */
  id: string;
};

/** The tenant's people. */
export type UserList = {
  /** Oldest first. */
  users: UserView[];
};

/** A SCIM User. */
export type UserResource = {
  /** Whether they may sign in. */
  active: boolean;
  /** Their display name. */
  displayName?: string | null;
  /** Their primary email. */
  emails?: EmailDoc[];
  /** The client's id for the person. */
  externalId?: string | null;
  /** The groups they are a member of (read-only). */
  groups: RefDoc[];
  /** CFactory's id (`usr_…`). */
  id: string;
  /** Metadata. */
  meta: Meta;
  name?: null | NameDoc;
  /** `["urn:ietf:params:scim:schemas:core:2.0:User"]`. */
  schemas: string[];
  /** Unique within the tenant without regard to case. */
  userName: string;
};

/** A person of the tenant. */
export type UserView = {
  /** Whether they may sign in. */
  active: boolean;
  /** When they were first stored. */
  created_at: string;
  /** Their display name, as the provider last said. */
  display_name?: string | null;
  /** Their email, as the provider last said. */
  email?: string | null;
  /** The provisioning client's own id for them. */
  external_id?: string | null;
  /** The groups their last sign-in named, sorted. */
  groups: string[];
  /** Their CFactory id (`usr_…`). */
  id: string;
  /** When they last signed in. */
  last_sign_in_at?: string | null;
  /** The provisioned (SCIM) groups they are a member of, by name. */
  scim_groups: UserGroupView[];
  /**
   * What their groups (both kinds) grant now under the `[roles]` table (empty:
   * nothing, or single sign-on is not configured).
   */
  scopes: string[];
  /** `sso` when their first sign-in made them, `scim` when provisioning did. */
  source: string;
  /** The identity provider's subject identifier. */
  subject: string;
  /** The provisioning's user name (`null` for a person made by signing in). */
  user_name?: string | null;
};

/** TFactory's verification block: the level it achieved against the level it aimed for. */
export type Verification = {
  /** The level reached (`VAL-0`). */
  achieved_level?: string | null;
  /** The sender's one-line claim. */
  claim?: string | null;
  /** Each level's status; left out when none. */
  levels?: VerificationLevel[];
  /** The level aimed for (`VAL-2`). */
  target_level?: string | null;
};

/** One level of a verification. */
export type VerificationLevel = {
  /** The level (`VAL-1`). */
  level: string;
  /** Why, when the sender said. */
  reason?: string | null;
  /** `passed`, `failed`, `not_run`, … */
  status: string;
};

/**
 * One unit of work across the three services: plan session → issue → coding task →
 * branch/PR → test spec, with one stage per service, usage, and liveness.
 */
export type WorkItem = {
  /** Keys merged into this item. */
  aliases: string[];
  budget?: null | BudgetState;
  /** The canonical key. */
  correlation_key: string;
  /** Time of the earliest event. */
  created_at: string;
  /** Events accepted onto this item. */
  event_count: number;
  /** Ingest findings. */
  flags: IngestFlags;
  /** Round trips from a failed test back to more coding (handbacks). */
  handbacks: number;
  /** Chain links. */
  links: Links;
  /** Liveness at read time. */
  liveness: Liveness;
  /** Repository or project. */
  project: string | null;
  /** Plan, code and test. */
  stages: Stages;
  /** Title, when a sender gave one. */
  title: string | null;
  /** Time of the latest event. */
  updated_at: string;
  /** Usage per (service, task). */
  usage_by_task: TaskUsage[];
  /** Usage over every task. */
  usage_total: UsageAmounts;
};

/** A page of WorkItems. */
export type WorkItemList = {
  /** How many items match in all. */
  count: number;
  /** This page, newest change first. */
  items: WorkItem[];
  /** The next page's cursor (opaque; URL-encode it), or null on the last page. */
  next_cursor?: string | null;
  /** How many matching items are stalled. */
  stalled_count: number;
  /**
   * Items of this page left out because their stored state cannot be read (counted
   * in `count`; the log names each).
   */
  unreadable: number;
};

/** One worker's share of a task's usage, as its latest report said. */
export type WorkerUsage = {
  /** `api` and `cloud` are metered; subscription and local runs are not. */
  billing_mode: string | null;
  /** Dollars: real when metered, notional otherwise. */
  cost_usd: number | null;
  /** Prompt tokens. */
  input_tokens?: number | null;
  /** Model id. */
  model: string | null;
  /** Completion tokens. */
  output_tokens?: number | null;
  /** LLM provider. */
  provider: string | null;
  /** Tokens used, as the RFC text spells it (older senders). */
  tokens: number | null;
  /** Total tokens, as the real senders spell it. */
  total_tokens?: number | null;
  /** The worker's id. */
  worker_id: string | null;
};

/** Each operation's success body, by operation id. */
export interface Operations {
  /** GET /api/actions */
  listActions: ActionList;
  /** GET /api/actions/{id} */
  getAction: ActionView;
  /** POST /api/actions/{id}/confirm */
  confirmAction: Confirmed;
  /** POST /api/actions/{id}/reject */
  rejectAction: Rejected;
  /** POST /api/actions/propose */
  proposeAction: ActionView;
  /** GET /api/activity */
  activity: ActivityPage;
  /** GET /api/anomalies */
  listAnomalies: AnomalyList;
  /** GET /api/audit */
  listAudit: AuditPage;
  /** GET /api/audit/chain */
  verifyAudit: ChainReport;
  /** GET /api/auth/methods */
  authMethods: AuthMethods;
  /** GET /api/auth/oidc/callback */
  ssoCallback: void;
  /** GET /api/auth/oidc/login */
  ssoLogin: void;
  /** POST /api/copilot/actions */
  adviseAction: AdvisedAction;
  /** POST /api/copilot/actions/{actionId}/confirm */
  confirmAdvisedAction: Confirmed;
  /** POST /api/copilot/chat */
  copilotChat: ChatTurn;
  /** POST /api/events */
  ingestEventsAlias: IngestResult;
  /** POST /api/events/completion */
  ingestCompletionEvent: IngestResult;
  /** GET /api/groups */
  listGroups: GroupList;
  /** GET /api/insights */
  insightCards: CardList;
  /** GET /api/live-agents */
  listLiveAgents: LiveAgentList;
  /** GET /api/live-agents/{correlationKey}/ws */
  agentConsoleStream: void;
  /** GET /api/needs-you */
  needsYou: NeedsList;
  /** GET /api/needs-you/count */
  needsYouCount: Count;
  /** POST /api/refresh */
  refresh: RoundList;
  /** GET /api/roles */
  listRoles: RoleList;
  /** GET /api/rollups */
  getRollups: Record<string, unknown>;
  /** GET /api/search */
  search: SearchResults;
  /** GET /api/services */
  list: ServiceList;
  /** PUT /api/services/{name} */
  set_url: Record<string, unknown>;
  /** GET /api/session */
  currentSession: SessionView;
  /** POST /api/session */
  signIn: SessionView;
  /** DELETE /api/session */
  signOut: void;
  /** GET /api/tokens */
  getTokens: TokensBody;
  /** GET /api/usage */
  getUsage: UsageRowDoc[];
  /** GET /api/users */
  listUsers: UserList;
  /** PATCH /api/users/{id} */
  setUserActive: UserView;
  /** DELETE /api/users/{id} */
  deleteUser: void;
  /** GET /api/workitems */
  listWorkItems: WorkItemList;
  /** GET /api/workitems/{correlationKey} */
  getWorkItem: WorkItem;
  /** GET /api/workitems/{correlationKey}/actions */
  itemActions: ItemActionsView;
  /** GET /api/workitems/{correlationKey}/process */
  process: ProcessAnswer;
  /** GET /api/workitems/{correlationKey}/timeline */
  getTimeline: TimelinePage;
  /** GET /api/ws */
  cockpitStream: void;
  /** GET /health */
  health: void;
  /** GET /mcp */
  mcpStream: void;
  /** POST /mcp */
  mcpMessage: Record<string, unknown>;
  /** GET /metrics */
  metrics: void;
  /** GET /openapi.json */
  openapi: Record<string, unknown>;
  /** GET /ready */
  ready: void;
  /** POST /scim/v2/.search */
  scimSearchAll: void;
  /** GET /scim/v2/Groups */
  scimListGroups: void;
  /** POST /scim/v2/Groups */
  scimCreateGroup: void;
  /** POST /scim/v2/Groups/.search */
  scimSearchGroups: void;
  /** GET /scim/v2/Groups/{id} */
  scimGetGroup: void;
  /** PUT /scim/v2/Groups/{id} */
  scimReplaceGroup: void;
  /** PATCH /scim/v2/Groups/{id} */
  scimPatchGroup: void;
  /** DELETE /scim/v2/Groups/{id} */
  scimDeleteGroup: void;
  /** GET /scim/v2/ResourceTypes */
  scimResourceTypes: void;
  /** GET /scim/v2/ResourceTypes/{id} */
  scimResourceType: void;
  /** GET /scim/v2/Schemas */
  scimSchemas: void;
  /** GET /scim/v2/Schemas/{id} */
  scimSchema: void;
  /** GET /scim/v2/ServiceProviderConfig */
  scimServiceProviderConfig: void;
  /** GET /scim/v2/Users */
  scimListUsers: void;
  /** POST /scim/v2/Users */
  scimCreateUser: void;
  /** POST /scim/v2/Users/.search */
  scimSearchUsers: void;
  /** GET /scim/v2/Users/{id} */
  scimGetUser: void;
  /** PUT /scim/v2/Users/{id} */
  scimReplaceUser: void;
  /** PATCH /scim/v2/Users/{id} */
  scimPatchUser: void;
  /** DELETE /scim/v2/Users/{id} */
  scimDeleteUser: void;
  /** GET /ws/cockpit */
  cockpitStreamAlias: void;
}
