//! The command line, defined once: help text, flags and their `STACKSPIN_*` environment
//! equivalents all come from these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Stackspin: your organisation's own apps, with one account per person and single sign-on.
#[derive(Debug, Parser)]
#[command(name = "stackspin", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the control plane keeps its data; shared by `serve` and the admin commands, which
/// work directly on the same database.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML config file (keys: listen, public_url, data_dir, database_url, admin_email,
    /// log_format). Environment variables and flags override it.
    #[arg(long, global = true, env = "STACKSPIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder for the embedded database and other state.
    #[arg(long, global = true, env = "STACKSPIN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB [default: a SQLite file in the
    /// data dir].
    #[arg(
        long,
        global = true,
        env = "STACKSPIN_DATABASE_URL",
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// The platform key that encrypts secrets at rest (created, mode 0600, on first start)
    /// [default: DATA_DIR/secret.key].
    #[arg(
        long,
        global = true,
        env = "STACKSPIN_SECRET_KEY_FILE",
        value_name = "FILE"
    )]
    pub secret_key_file: Option<PathBuf>,
    /// Log format: text for people, json for machines.
    #[arg(
        long,
        global = true,
        env = "STACKSPIN_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: Option<String>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// A catalog folder (one folder per app: app.toml, values.yaml) to use instead of the one
    /// built in; for testing charts of your own.
    #[arg(long, global = true, env = "STACKSPIN_CATALOG", value_name = "DIR")]
    pub catalog: Option<PathBuf>,
    /// Where the cluster folders are (one per cluster: cluster.toml, secrets.toml,
    /// kubeconfig.yaml), as in the seed.
    #[arg(
        long,
        global = true,
        env = "STACKSPIN_CLUSTERS_DIR",
        value_name = "DIR",
        default_value = "clusters"
    )]
    pub clusters_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane: single sign-on, Dashboard, API and app operator.
    Serve(ServeArgs),
    /// Show the setup credentials of the first admin: from the database, or with CLUSTER
    /// from that cluster (its folder's kubeconfig).
    AdminCredentials {
        /// A cluster folder's name (see `stackspin create`).
        cluster: Option<String>,
    },
    /// Install (or upgrade, or resume) Stackspin on a cluster: preflight, Flux, the platform,
    /// waiting until the core is ready; then where to log in. Safe to run again.
    Install(InstallArgs),
    /// Remove k3s and everything on it from the cluster's server over SSH (the seed's "purge
    /// and install from scratch"): every app's data there is lost. The cluster folder stays.
    Purge {
        /// A cluster folder's name.
        cluster: String,
        /// The cluster's name again, to confirm (asked for at a terminal otherwise).
        #[arg(long, value_name = "CLUSTER")]
        confirm: Option<String>,
    },
    /// Grow the cluster past one server.
    #[command(subcommand)]
    Node(NodeCommand),
    /// A cluster's versions, nodes, apps and their state, and addresses.
    Info {
        /// A cluster folder's name.
        cluster: String,
    },
    /// Check a cluster end to end: nodes, releases at their versions, pods, certificates
    /// (with why one was not issued), DNS and HTTPS for every host, and each app's single
    /// sign-on. Exits non-zero when anything fails, saying what to do.
    Test {
        /// A cluster folder's name.
        cluster: String,
        /// Only this app's checks.
        #[arg(long)]
        app: Option<String>,
        /// Leave checks out where they cannot work from this machine (dns, tls, sso),
        /// comma-separated.
        #[arg(long, value_delimiter = ',', value_enum)]
        skip: Vec<crate::provisioning::Skip>,
        /// Where the Dashboard answers, when not at https://dashboard.DOMAIN (through a
        /// port-forward, say).
        #[arg(long, value_name = "URL")]
        dashboard_url: Option<String>,
        /// An admin API token (`stackspin api-token create`): each app is then signed in to
        /// by a throw-away user, deleted afterwards. Without it, only each app's client is
        /// checked.
        #[arg(long, env = "STACKSPIN_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// The generated secrets of a cluster (from its folder), or one of them (APP.NAME).
    Secrets {
        /// A cluster folder's name.
        cluster: String,
        /// One secret, as app.name (stackspin.setup_password).
        name: Option<String>,
    },
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage apps registered for single sign-on.
    #[command(subcommand)]
    App(AppCommand),
    /// Manage API tokens for /api/v1.
    #[command(subcommand)]
    ApiToken(ApiTokenCommand),
    /// Manage the identity provider's signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the platform key that seals secrets in the database.
    #[command(subcommand)]
    SecretKey(SecretKeyCommand),
    /// Show audit events (logins, MFA, recovery, invitations, role and client changes),
    /// newest first.
    Audit(AuditArgs),
    /// The control plane's database: consistent snapshots for backups, and putting one back.
    #[command(subcommand)]
    Db(DbCommand),
    /// Backups of the apps and the control plane (Velero, to the S3 store in cluster.toml).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Replace an app's data with a backup's: a safety backup of the current data first, then
    /// the app is stopped, its workloads and volumes removed, the backup's restored, the app
    /// started and waited for. `stackspin serve` does the work; this follows it.
    Restore(RestoreArgs),
    /// Write the cluster's desired state (namespaces, Flux sources and HelmReleases, their
    /// values, ClusterIssuers) as a kustomize tree. With the global --config, FILE is the
    /// cluster configuration (cluster.toml: domain, ip_address, admin_email, outgoing_mail_*,
    /// apps, ...); flags win over it. Needs no cluster and no database.
    Manifests(ManifestsArgs),
    /// Write a cluster's folder (CLUSTERS_DIR/CLUSTER: cluster.toml and the generated
    /// secrets), optionally creating its VPS and DNS records with the Greenhost Cosmos API
    /// (COSMOS_API_TOKEN). Running it again changes only what the flags name.
    Create(CreateArgs),
    /// Require two-step verification: for nobody (none), admins, or everyone.
    RequireMfa {
        /// none, admins or everyone
        policy: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Join another server to the cluster as a k3s agent, over SSH as root. A cluster of
    /// several servers needs storage that is not node-local for apps that move between them,
    /// and the control plane on PostgreSQL to run more than one replica (see the README).
    Add {
        /// A cluster folder's name.
        cluster: String,
        /// The new server's address.
        #[arg(long, value_name = "IP")]
        ip_address: String,
        /// The new server's host key fingerprint (SHA256:...), when there is no terminal.
        #[arg(long, value_name = "FINGERPRINT")]
        accept_host_key: Option<String>,
        /// Where the server downloads k3s's install script from [default:
        /// https://get.k3s.io].
        #[arg(
            long,
            env = "STACKSPIN_K3S_INSTALL_URL",
            value_name = "URL",
            hide = true
        )]
        k3s_install_url: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// A cluster folder's name (see `stackspin create`).
    pub cluster: String,
    /// Install on the existing cluster this kubeconfig reaches (kept in the cluster folder
    /// for later runs). Without it, install goes to the server over SSH as root (your own
    /// ssh setup: agent, ~/.ssh/config, known_hosts), checks it and installs k3s.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// How long to wait for the core to become ready.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub timeout: u64,
    /// The server's host key fingerprint (SHA256:...), confirmed with your provider, when it
    /// is not in your known_hosts yet and there is no terminal to ask at.
    #[arg(long, value_name = "FINGERPRINT")]
    pub accept_host_key: Option<String>,
    /// Where the server downloads k3s's install script from [default: https://get.k3s.io].
    #[arg(
        long,
        env = "STACKSPIN_K3S_INSTALL_URL",
        value_name = "URL",
        hide = true
    )]
    pub k3s_install_url: Option<String>,
    /// Where Flux's release manifest is downloaded from [default: Flux's GitHub release].
    #[arg(
        long,
        env = "STACKSPIN_FLUX_MANIFEST_URL",
        value_name = "URL",
        hide = true
    )]
    pub flux_manifest_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The cluster's name: its folder under --clusters-dir (usually its domain).
    pub cluster: String,
    /// The cluster's domain [default: CLUSTER]; with --subdomain, the zone it is part of.
    pub domain: Option<String>,
    /// The server's public IP address (not with --create-droplet).
    #[arg(long, value_name = "IP")]
    pub ip_address: Option<String>,
    /// The admin's e-mail address: the first Dashboard login, and Let's Encrypt's contact.
    #[arg(long, value_name = "EMAIL")]
    pub admin_email: Option<String>,
    /// Apps to install, comma-separated (nextcloud, zulip, wekan, wordpress, hedgedoc,
    /// monitoring).
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    pub apps: Option<Vec<String>>,
    /// When automatic updates may run, HH:MM-HH:MM [default: 02:00-04:00].
    #[arg(long, value_name = "HH:MM-HH:MM")]
    pub maintenance_window: Option<String>,
    /// The time zone of the window (Europe/Amsterdam) [default: UTC].
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// Create the VPS with the Cosmos API (COSMOS_API_TOKEN; COSMOS_API_URL overrides the
    /// API's address).
    #[arg(long, requires_all = ["create_hostname", "ssh_key_id"])]
    pub create_droplet: bool,
    /// The new VPS's host name.
    #[arg(long, value_name = "HOST")]
    pub create_hostname: Option<String>,
    /// The Cosmos ID of the SSH key that gets root access to the new VPS.
    #[arg(long, value_name = "ID")]
    pub ssh_key_id: Option<u64>,
    /// The new VPS's region.
    #[arg(long, value_name = "REGION", default_value = "ams1")]
    pub create_region: String,
    /// The new VPS's memory in MiB (the seed asks for 12 GB).
    #[arg(long, value_name = "MIB", default_value_t = 12288)]
    pub create_memory: u64,
    /// The new VPS's disk in GiB (the seed recommends 30).
    #[arg(long, value_name = "GIB", default_value_t = 30)]
    pub create_disk: u64,
    /// The new VPS's operating system image.
    #[arg(long, value_name = "IMAGE", default_value = "debian-12-x64")]
    pub create_image: String,
    /// Create the DNS records with the Cosmos API: DOMAIN (or SUBDOMAIN.DOMAIN) pointing at
    /// the server, and a wildcard for the apps.
    #[arg(long)]
    pub create_domain_records: bool,
    /// The cluster's subdomain of DOMAIN (then DOMAIN is the zone in your Cosmos account).
    #[arg(long, value_name = "SUB")]
    pub subdomain: Option<String>,
}

#[derive(Debug, Args)]
pub struct ManifestsArgs {
    /// The cluster's domain; apps get subdomains of it (files.DOMAIN, chat.DOMAIN, ...).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// The cluster's public IP address.
    #[arg(long, value_name = "IP")]
    pub ip_address: Option<String>,
    /// The admin's e-mail address (also Let's Encrypt's contact).
    #[arg(long, value_name = "EMAIL")]
    pub admin_email: Option<String>,
    /// Apps to install, comma-separated (see the catalog: nextcloud, zulip, wekan, wordpress,
    /// hedgedoc, monitoring).
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    pub apps: Option<Vec<String>>,
    /// The generated secrets, created once and only ever added to (mode 0600).
    #[arg(long, value_name = "FILE", default_value = "stackspin-secrets.toml")]
    pub secrets: PathBuf,
    /// The folder to write the tree to (DIR/kustomization.yaml; ClusterIssuers in
    /// DIR/issuers/). A tree written before is replaced whole.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "STACKSPIN_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<String>,
    /// Public base URL, also the OpenID Connect issuer [default: derived from --listen].
    #[arg(long, env = "STACKSPIN_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// E-mail address of the first admin, created when the database has no users.
    #[arg(long, env = "STACKSPIN_ADMIN_EMAIL", value_name = "EMAIL")]
    pub admin_email: Option<String>,
    /// Reverse proxies whose X-Forwarded-For is believed: addresses or CIDR ranges,
    /// comma-separated [default: none, the peer address is the client].
    #[arg(long, env = "STACKSPIN_TRUSTED_PROXIES", value_name = "LIST")]
    pub trusted_proxies: Option<String>,
    /// A second address that serves only /metrics, for Prometheus [default: metrics are not
    /// served].
    #[arg(long, env = "STACKSPIN_METRICS_LISTEN", value_name = "IP:PORT")]
    pub metrics_listen: Option<String>,
    /// Run the app operator against the cluster this kubeconfig names [default: the pod's
    /// ServiceAccount when running in a cluster, else no cluster: apps are only recorded].
    #[arg(long, env = "STACKSPIN_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The cluster configuration the operator renders apps with (cluster.toml: domain,
    /// ip_address, admin_email, outgoing_mail_*, maintenance_window, time_zone, ...). Needed
    /// when there is a cluster.
    #[arg(long, env = "STACKSPIN_CLUSTER_CONFIG", value_name = "FILE")]
    pub cluster_config: Option<PathBuf>,
    /// Seconds between the operator's rounds when nothing is moving; changes made in the
    /// Dashboard or API start a round at once, those made with `stackspin app` wait for it.
    #[arg(long, env = "STACKSPIN_OPERATOR_INTERVAL", value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub operator_interval: u64,
    /// Backups the control plane makes hold objects and claims but no volume data: only for
    /// a cluster where Velero's node agent cannot run (the test bed's simulated pods).
    #[arg(long, env = "STACKSPIN_BACKUP_OBJECTS_ONLY", hide = true)]
    pub backup_objects_only: bool,
    /// Where Prometheus answers queries (the Status page's disk use). By default the
    /// in-cluster address of the monitoring app's Prometheus, once it is installed.
    #[arg(long, env = "STACKSPIN_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus_url: Option<String>,
    /// A file holding the first admin's setup password, used instead of a generated one when
    /// the database has no users (the installer chooses it, so it can show it later).
    #[arg(long, env = "STACKSPIN_SETUP_PASSWORD_FILE", value_name = "FILE")]
    pub setup_password_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SecretKeyCommand {
    /// Replace the platform key and seal every secret again under the new one.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. Without a password they set one through their invitation.
    Add {
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Make the user a Stackspin admin.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Delete a user and their roles.
    Delete { email: String },
    /// End all of a user's sessions, in Stackspin and (through back-channel logout) in apps.
    Logout { email: String },
    /// Mail a fresh invitation (someone who never chose a password) or password reset link;
    /// with --print, print a single-use link to hand over instead (earlier unused links stop
    /// working).
    Link {
        email: String,
        /// Print the link instead of mailing it (when mail is off or does not arrive).
        #[arg(long)]
        print: bool,
    },
    /// Set a user's role in one app: admin, user or none (no access).
    SetRole {
        email: String,
        app: String,
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Register an external app for single sign-on and print its client credentials.
    Register {
        /// Short name: lowercase letters, digits and '-'.
        name: String,
        /// The app's address, where "Launch" opens it.
        #[arg(long)]
        url: String,
        /// Allowed redirect URI (repeat for several); matched exactly.
        #[arg(long = "redirect-uri", value_name = "URI", required = true)]
        redirect_uris: Vec<String>,
        /// Allowed post-logout redirect URI (repeat for several).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// Where to POST back-channel logout tokens.
        #[arg(long, value_name = "URI")]
        backchannel_logout_uri: Option<String>,
        /// An https image shown on the app's tile in the Dashboard.
        #[arg(long, value_name = "URL")]
        icon_url: Option<String>,
        /// A public client (no secret; PKCE required), for native and single-page apps.
        #[arg(long)]
        public: bool,
        /// Name shown to people [default: NAME].
        #[arg(long)]
        display_name: Option<String>,
        /// Role of people with no explicit role in this app: admin, user or none.
        #[arg(long, default_value = "user")]
        default_role: String,
        /// Algorithm for the app's ID tokens: RS256 or ES256.
        #[arg(long, default_value = "RS256")]
        id_token_alg: String,
    },
    /// List registered apps.
    List,
    /// Remove an app and every role in it.
    Remove { name: String },
    /// List the apps Stackspin can install, with their versions and how they map admin
    /// rights.
    Catalog,
    /// Install an app from the catalog; the operator in `serve` puts it on the cluster.
    Install {
        name: String,
        /// The app's subdomain of the cluster's domain [default: the catalog's, such as files
        /// for Nextcloud]; "" puts it on the bare domain where the app allows it.
        #[arg(long, value_name = "LABEL")]
        subdomain: Option<String>,
        /// Keep the installed version until `stackspin app update` (no automatic updates).
        #[arg(long)]
        pin: bool,
    },
    /// Uninstall an app. Its volumes (the app's data) are kept unless --purge is given.
    Uninstall {
        name: String,
        /// Remove the app's volumes too: its data is gone for good.
        #[arg(long)]
        purge: bool,
    },
    /// Show installed apps: state with the reason, running and pending versions.
    Status { name: Option<String> },
    /// Take a pending update now instead of in the maintenance window.
    Update {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Every installed app with a pending update.
        #[arg(long)]
        all: bool,
    },
    /// Turn automatic updates (inside the maintenance window) on or off; off pins the app to
    /// its version.
    AutoUpdate {
        name: String,
        /// on or off
        #[arg(value_parser = ["on", "off"])]
        setting: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Replace the signing keys with new ones under new key ids. The old keys stay published
    /// until the tokens they signed have expired; running servers pick the new keys up within
    /// 30 seconds.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Write a consistent copy of the database while it is in use (SQLite's online copy, or
    /// a PostgreSQL dump from one transaction); the file is replaced only once complete.
    /// Velero's backup hook runs this before it copies the control plane's volume.
    Snapshot {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Put a snapshot back as the database (--database-url or the data dir). Stop `serve`
    /// first. A PostgreSQL database must be new and empty; a SQLite file is replaced.
    RestoreSnapshot {
        /// A file written by `stackspin db snapshot`.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Backups, newest first: what they hold, their state, size and expiry.
    List,
    /// Back up now: one app, or the whole platform.
    Create {
        /// Only this app (and its parts).
        #[arg(long)]
        app: Option<String>,
        /// Wait until the backup has finished.
        #[arg(long)]
        wait: bool,
    },
    /// One backup.
    Show {
        /// The backup's name (see `stackspin backup list`).
        backup: String,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RestoreArgs {
    #[command(subcommand)]
    pub command: Option<RestoreCommand>,
    /// The app whose data is replaced.
    pub app: Option<String>,
    /// The backup to restore it from (see `stackspin backup list`).
    #[arg(long, value_name = "BACKUP")]
    pub from: Option<String>,
    /// Ask for the restore and return at once instead of following it.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Restores, newest first.
    List,
    /// One restore and each of its steps; with --follow, until it ends.
    Status {
        id: i64,
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events about this person (e-mail address).
    #[arg(long)]
    pub user: Option<String>,
    /// Only events in this app.
    #[arg(long)]
    pub app: Option<String>,
    /// Only this kind (login.success), or kinds starting with a prefix ending in '.' (login.).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only events at or after this time (RFC 3339, e.g. 2026-11-21T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events at or before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

#[derive(Debug, Subcommand)]
pub enum ApiTokenCommand {
    /// Create a token that acts with an admin's rights; it is shown once.
    Create {
        /// A name to recognise the token by.
        name: String,
        /// The admin the token acts for.
        #[arg(long = "as", value_name = "EMAIL")]
        admin: String,
    },
}
