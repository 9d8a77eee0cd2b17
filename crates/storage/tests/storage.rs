//! The storage story: every test here runs against SQLite and PostgreSQL (see the
//! `on_both_backends!` list at the bottom), so both backends keep the same behaviour.
#![allow(clippy::unwrap_used)]

use stackspin_domain::{
    AppName, Email, NewApp, NewUser, RedirectUri, Role, UserName,
    app::parse_app_home,
    password::{HashParams, Password},
};
use stackspin_storage::{StorageError, Store, testing::TestDb};

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

/// A user; admins have a password, so they count as admins who can log in (an invited admin
/// without one does not: see `an_invited_admin_is_not_an_admin_who_can_log_in`).
fn new_user(addr: &str, admin: bool) -> NewUser {
    NewUser {
        email: email(addr),
        name: UserName::parse("Test Person").unwrap(),
        password_hash: admin.then(|| ADMIN_HASH.clone()),
        is_admin: admin,
    }
}

static ADMIN_HASH: std::sync::LazyLock<stackspin_domain::password::PasswordHash> =
    std::sync::LazyLock::new(|| {
        HashParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
        .hash(&Password::new("an admin's own passphrase").unwrap())
        .unwrap()
    });

fn new_app(name: &str) -> NewApp {
    NewApp {
        name: AppName::parse(name).unwrap(),
        display_name: name.to_uppercase(),
        url: parse_app_home(&format!("https://{name}.example.org")).unwrap(),
        redirect_uris: vec![RedirectUri::parse(&format!("https://{name}.example.org/cb")).unwrap()],
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
        icon_url: None,
        public: false,
        default_role: Role::User,
        id_token_alg: stackspin_domain::SigningAlg::Rs256,
    }
}

async fn users_are_unique_by_case_insensitive_email(store: &Store) {
    let ada = store
        .create_user(&new_user("Ada@Example.org", false))
        .await
        .unwrap();
    let err = store
        .create_user(&new_user("ada@EXAMPLE.org", false))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::DuplicateEmail(_)),
        "got {err:?}"
    );
    let found = store
        .user_by_email(&email("ADA@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, ada.id);
    assert_eq!(found.email.as_str(), "Ada@example.org");
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert!(
        store
            .user_by_email(&email("nobody@example.org"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn users_round_trip_every_field(store: &Store) {
    let params = HashParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    let hash = params
        .hash(&Password::new("a sufficiently long one").unwrap())
        .unwrap();
    let mut new = new_user("grace@example.org", true);
    new.password_hash = Some(hash.clone());
    let created = store.create_user(&new).await.unwrap();
    let read = store.user_by_id(created.id).await.unwrap().unwrap();
    assert_eq!(read.email, created.email);
    assert_eq!(read.name, created.name);
    assert!(read.is_admin);
    assert_eq!(read.password_hash, Some(hash));
    // Timestamps survive to the microsecond on both backends.
    assert_eq!(
        read.created_at.timestamp_micros(),
        created.created_at.timestamp_micros()
    );
    let other = params
        .hash(&Password::new("another long password").unwrap())
        .unwrap();
    store.set_password_hash(created.id, &other).await.unwrap();
    let read = store.user_by_id(created.id).await.unwrap().unwrap();
    assert_eq!(read.password_hash, Some(other));
}

async fn list_is_ordered_and_delete_removes(store: &Store) {
    for addr in ["carol@example.org", "Alice@example.org", "bob@example.org"] {
        store.create_user(&new_user(addr, false)).await.unwrap();
    }
    let listed: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email.to_string())
        .collect();
    assert_eq!(
        listed,
        ["Alice@example.org", "bob@example.org", "carol@example.org"]
    );
    let gone = store.delete_user(&email("BOB@example.org")).await.unwrap();
    assert_eq!(gone.email.as_str(), "bob@example.org");
    assert_eq!(store.count_users().await.unwrap(), 2);
    let err = store
        .delete_user(&email("bob@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::UserNotFound(_)), "got {err:?}");
}

async fn the_last_admin_cannot_be_deleted(store: &Store) {
    let first = store
        .create_user(&new_user("first@example.org", true))
        .await
        .unwrap();
    let err = store.delete_user(&first.email).await.unwrap_err();
    assert!(matches!(err, StorageError::LastAdmin(_)), "got {err:?}");
    assert_eq!(
        err.to_string(),
        "first@example.org is the last admin: make someone else an admin first"
    );
    store
        .create_user(&new_user("second@example.org", true))
        .await
        .unwrap();
    store.delete_user(&first.email).await.unwrap();
    assert!(store.user_by_id(first.id).await.unwrap().is_none());
}

/// An admin who was invited and never chose a password cannot manage anything: removing the
/// last admin who can log in is refused though the invited one exists, by deletion, batch
/// deletion and demotion alike.
async fn an_invited_admin_is_not_an_admin_who_can_log_in(store: &Store) {
    let root = store
        .create_user(&new_user("root@example.org", true))
        .await
        .unwrap();
    let mut invited = new_user("invited@example.org", true);
    invited.password_hash = None;
    let invited = store.create_user(&invited).await.unwrap();
    let err = store.delete_user(&root.email).await.unwrap_err();
    assert!(matches!(err, StorageError::LastAdmin(_)), "{err:?}");
    let err = store.delete_users(&[root.id]).await.unwrap_err();
    assert!(matches!(err, StorageError::LastAdmin(_)), "{err:?}");
    let demote = stackspin_storage::UserPatch {
        is_admin: Some(false),
        ..Default::default()
    };
    let err = store
        .update_user(root.id, root.updated_at, &demote)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::LastAdmin(_)), "{err:?}");
    // The invited admin can go: root still manages the platform.
    store.delete_user(&invited.email).await.unwrap();
    assert!(store.user_by_id(root.id).await.unwrap().unwrap().is_admin);
}

async fn bootstrap_creates_the_first_admin_once(store: &Store) {
    let created = store
        .bootstrap_admin(&new_user("admin@example.org", true), "setup-pass-123456")
        .await
        .unwrap()
        .unwrap();
    assert!(created.is_admin);
    let again = store
        .bootstrap_admin(&new_user("other@example.org", true), "x")
        .await
        .unwrap();
    assert!(again.is_none());
    let creds = store.setup_credentials().await.unwrap().unwrap();
    assert_eq!(creds.email.as_str(), "admin@example.org");
    assert_eq!(creds.password, "setup-pass-123456");
    assert_eq!(creds.user_id, created.id);
    assert!(!format!("{creds:?}").contains("setup-pass"));
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn concurrent_bootstraps_create_exactly_one_admin(store: &Store) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .bootstrap_admin(&new_user(&format!("admin{i}@example.org"), true), "pw")
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().is_some() {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn concurrent_writers_all_succeed(store: &Store) {
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_user(&new_user(&format!("user{i}@example.org"), false))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // The same address from many writers at once: exactly one wins, the rest see a conflict.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_user(&new_user("same@example.org", false))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StorageError::DuplicateEmail(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(store.count_users().await.unwrap(), 25);
}

async fn apps_register_list_and_remove(store: &Store) {
    let app = store
        .create_app(
            &new_app("wiki"),
            stackspin_domain::ClientId("cid-wiki".into()),
            Some("hash".into()),
        )
        .await
        .unwrap();
    assert!(!app.is_public());
    let err = store
        .create_app(
            &new_app("wiki"),
            stackspin_domain::ClientId("cid-2".into()),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::DuplicateApp(_)), "got {err:?}");
    let mut public = new_app("notes");
    public.post_logout_redirect_uris =
        vec![RedirectUri::parse("https://notes.example.org/bye").unwrap()];
    public.backchannel_logout_uri = Some(url::Url::parse("http://notes.svc:8080/bcl").unwrap());
    store
        .create_app(
            &public,
            stackspin_domain::ClientId("cid-notes".into()),
            None,
        )
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_apps()
        .await
        .unwrap()
        .iter()
        .map(|a| a.name.to_string())
        .collect();
    assert_eq!(names, ["notes", "wiki"]);
    let notes = store.app_by_client_id("cid-notes").await.unwrap().unwrap();
    assert!(notes.is_public());
    assert_eq!(
        notes.post_logout_redirect_uris[0].as_str(),
        "https://notes.example.org/bye"
    );
    assert_eq!(
        notes.backchannel_logout_uri.as_deref(),
        Some("http://notes.svc:8080/bcl")
    );
    assert_eq!(
        notes.redirect_uris[0].as_str(),
        "https://notes.example.org/cb"
    );
    store
        .remove_app(&AppName::parse("wiki").unwrap())
        .await
        .unwrap();
    let err = store
        .remove_app(&AppName::parse("wiki").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::AppNotFound(_)), "got {err:?}");
    assert!(
        store
            .app_by_name(&AppName::parse("wiki").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

async fn roles_default_change_and_cascade(store: &Store) {
    let user = store
        .create_user(&new_user("dana@example.org", false))
        .await
        .unwrap();
    let mut locked = new_app("payroll");
    locked.default_role = Role::None;
    store
        .create_app(&locked, stackspin_domain::ClientId("c1".into()), None)
        .await
        .unwrap();
    store
        .create_app(
            &new_app("chat"),
            stackspin_domain::ClientId("c2".into()),
            None,
        )
        .await
        .unwrap();
    let chat = AppName::parse("chat").unwrap();
    let roles = store.roles_of(user.id).await.unwrap();
    assert_eq!(
        roles,
        [
            (chat.clone(), Role::User),
            (AppName::parse("payroll").unwrap(), Role::None)
        ]
    );
    let change = store
        .set_role(&user.email, &chat, Role::Admin)
        .await
        .unwrap();
    assert_eq!((change.previous, change.role), (Role::User, Role::Admin));
    let change = store
        .set_role(&user.email, &chat, Role::None)
        .await
        .unwrap();
    assert_eq!((change.previous, change.role), (Role::Admin, Role::None));
    assert_eq!(
        store.roles_of(user.id).await.unwrap()[0],
        (chat.clone(), Role::None)
    );

    let err = store
        .set_role(&user.email, &AppName::parse("nope").unwrap(), Role::User)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::AppNotFound(_)), "got {err:?}");
    let err = store
        .set_role(&email("ghost@example.org"), &chat, Role::User)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::UserNotFound(_)), "got {err:?}");

    // Removing the app removes its roles; re-registering starts from the default again.
    store.remove_app(&chat).await.unwrap();
    store
        .create_app(
            &new_app("chat"),
            stackspin_domain::ClientId("c3".into()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store.roles_of(user.id).await.unwrap()[0],
        (chat, Role::User)
    );
}

async fn user_pages_search_sort_and_page(store: &Store) {
    use stackspin_storage::{UserPageRequest, UserSort};
    for (addr, name) in [
        ("zoe@example.org", "Zoe Zed"),
        ("adam@example.org", "Adam 50% Off"),
        ("bea@example.org", "Bea Smith"),
        ("carl@other.org", "Carl Smith"),
    ] {
        let mut u = new_user(addr, false);
        u.name = UserName::parse(name).unwrap();
        store.create_user(&u).await.unwrap();
    }
    let page = |query: Option<&str>, sort, descending, page, per_page| UserPageRequest {
        query: query.map(str::to_owned),
        sort,
        descending,
        page,
        per_page,
    };
    let emails = |p: &stackspin_storage::UserPage| -> Vec<String> {
        p.users.iter().map(|u| u.email.to_string()).collect()
    };
    let p = store
        .user_page(&page(None, UserSort::Email, false, 1, 2))
        .await
        .unwrap();
    assert_eq!(
        (emails(&p), p.total),
        (vec!["adam@example.org".into(), "bea@example.org".into()], 4)
    );
    let p = store
        .user_page(&page(None, UserSort::Email, false, 2, 2))
        .await
        .unwrap();
    assert_eq!(emails(&p), ["carl@other.org", "zoe@example.org"]);
    let p = store
        .user_page(&page(Some("SMITH"), UserSort::Name, true, 1, 10))
        .await
        .unwrap();
    assert_eq!(
        (emails(&p), p.total),
        (vec!["carl@other.org".into(), "bea@example.org".into()], 2)
    );
    let p = store
        .user_page(&page(Some("other.org"), UserSort::Email, false, 1, 10))
        .await
        .unwrap();
    assert_eq!(emails(&p), ["carl@other.org"]);
    // LIKE wildcards typed by the admin are literal characters.
    let p = store
        .user_page(&page(Some("50%"), UserSort::Email, false, 1, 10))
        .await
        .unwrap();
    assert_eq!(emails(&p), ["adam@example.org"]);
    let p = store
        .user_page(&page(Some("_"), UserSort::Email, false, 1, 10))
        .await
        .unwrap();
    assert_eq!(p.total, 0);
}

async fn edits_detect_concurrent_changes(store: &Store) {
    use stackspin_storage::UserPatch;
    let admin = store
        .create_user(&new_user("root@example.org", true))
        .await
        .unwrap();
    let u = store
        .create_user(&new_user("edit@example.org", false))
        .await
        .unwrap();
    let patch = UserPatch {
        name: Some(UserName::parse("First Edit").unwrap()),
        ..Default::default()
    };
    let first = store.update_user(u.id, u.updated_at, &patch).await.unwrap();
    assert_eq!(first.name.as_str(), "First Edit");
    // A second admin who read the old version must not overwrite the first edit.
    let stale = UserPatch {
        name: Some(UserName::parse("Second Edit").unwrap()),
        ..Default::default()
    };
    let err = store
        .update_user(u.id, u.updated_at, &stale)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.user_by_id(u.id).await.unwrap().unwrap().name.as_str(),
        "First Edit"
    );
    // Email changes keep uniqueness; the last admin cannot be demoted.
    let taken = UserPatch {
        email: Some(email("ROOT@example.org")),
        ..Default::default()
    };
    let err = store
        .update_user(u.id, first.updated_at, &taken)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::DuplicateEmail(_)), "{err:?}");
    let demote = UserPatch {
        is_admin: Some(false),
        ..Default::default()
    };
    let err = store
        .update_user(admin.id, admin.updated_at, &demote)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::LastAdmin(_)), "{err:?}");
}

async fn api_tokens_act_for_their_creator(store: &Store) {
    let admin = store
        .create_user(&new_user("ops@example.org", true))
        .await
        .unwrap();
    store
        .create_api_token(admin.id, "ci", "hash-1")
        .await
        .unwrap();
    let who = store.api_token_user("hash-1").await.unwrap().unwrap();
    assert_eq!(who.id, admin.id);
    assert!(store.api_token_user("nope").await.unwrap().is_none());
    store
        .create_user(&new_user("other-admin@example.org", true))
        .await
        .unwrap();
    store.delete_user(&admin.email).await.unwrap();
    assert!(
        store.api_token_user("hash-1").await.unwrap().is_none(),
        "goes with its creator"
    );
}

async fn default_role_changes_apply_to_new_users_only(store: &Store) {
    let old = store
        .create_user(&new_user("old@example.org", false))
        .await
        .unwrap();
    store
        .create_app(
            &new_app("wiki"),
            stackspin_domain::ClientId("c-wiki".into()),
            None,
        )
        .await
        .unwrap();
    let wiki = AppName::parse("wiki").unwrap();
    store.set_default_role(&wiki, Role::None).await.unwrap();
    assert_eq!(
        store.roles_of(old.id).await.unwrap(),
        [(wiki.clone(), Role::User)],
        "existing user keeps access"
    );
    let new = store
        .create_user(&new_user("new@example.org", false))
        .await
        .unwrap();
    assert_eq!(
        store.roles_of(new.id).await.unwrap(),
        [(wiki.clone(), Role::None)]
    );
    let err = store
        .set_default_role(&AppName::parse("nope").unwrap(), Role::User)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::AppNotFound(_)), "{err:?}");
}

async fn app_status_counts_sign_ins_and_failing_logouts(store: &Store) {
    use chrono::{Duration, Utc};
    use stackspin_storage::{NewSession, TokenKind, TokenRecord};
    let mut app = new_app("chat");
    app.icon_url = Some(url::Url::parse("https://chat.example.org/icon.png").unwrap());
    app.backchannel_logout_uri =
        Some(stackspin_domain::app::parse_backchannel_uri("http://chat:8080/bcl").unwrap());
    let app = store
        .create_app(&app, stackspin_domain::ClientId("c1".into()), None)
        .await
        .unwrap();
    let quiet = store
        .create_app(
            &new_app("quiet"),
            stackspin_domain::ClientId("c2".into()),
            None,
        )
        .await
        .unwrap();
    let stored = store.app_by_name(&app.name).await.unwrap().unwrap();
    assert_eq!(
        stored.icon_url.as_deref(),
        Some("https://chat.example.org/icon.png")
    );
    assert!(store.app_statuses().await.unwrap().is_empty());

    let ada = store
        .create_user(&new_user("ada@example.org", false))
        .await
        .unwrap();
    let now = Utc::now();
    for sid in ["s1", "s2"] {
        store
            .create_session(&NewSession {
                token_hash: format!("h-{sid}"),
                sid: sid.into(),
                user_id: ada.id,
                auth_time: now,
                amr: vec!["pwd".into()],
                expires_at: now + Duration::hours(1),
                ip: None,
                user_agent: None,
            })
            .await
            .unwrap();
        store
            .insert_tokens(&[TokenRecord {
                token_hash: format!("t-{sid}"),
                kind: TokenKind::Access,
                family_id: sid.into(),
                app_id: app.id,
                user_id: ada.id,
                sid: Some(sid.into()),
                scope: "openid".into(),
                auth_time: now,
                amr: vec!["pwd".into()],
                created_at: now,
                expires_at: now + Duration::hours(1),
            }])
            .await
            .unwrap();
    }
    let statuses = store.app_statuses().await.unwrap();
    let s = &statuses[&app.id];
    assert_eq!(s.signed_in, 2);
    assert!(
        s.last_sign_in
            .is_some_and(|t| (t - now).num_seconds().abs() < 60)
    );
    assert!(!s.logout_failing());
    assert!(!statuses.contains_key(&quiet.id));

    // Logging out queues a notice; one failed delivery makes the app show as failing.
    store.end_session("s1", "logout").await.unwrap();
    let due = store.claim_due_logouts(10).await.unwrap();
    assert_eq!(due.len(), 1);
    store
        .logout_failed(
            due[0].id,
            "connection refused",
            Some(now + Duration::minutes(1)),
        )
        .await
        .unwrap();
    let s = store.app_statuses().await.unwrap()[&app.id].clone();
    assert_eq!(
        (s.signed_in, s.retrying_logouts, s.failed_logouts),
        (1, 1, 0)
    );
    assert_eq!(s.last_error.as_deref(), Some("connection refused"));
    store
        .logout_failed(due[0].id, "gave up", None)
        .await
        .unwrap();
    let s = store.app_statuses().await.unwrap()[&app.id].clone();
    assert_eq!((s.retrying_logouts, s.failed_logouts), (0, 1));
    assert!(s.logout_failing());
}

async fn installed_apps_requests_status_and_forgetting(store: &Store) {
    use stackspin_storage::{AppState, ReleaseStatus};
    assert!(store.installed_apps().await.unwrap().is_empty());
    let wekan = store
        .request_install("wekan", Some("board"), true, "10.99.0")
        .await
        .unwrap();
    assert_eq!(wekan.state, AppState::Pending);
    assert!(wekan.wanted && wekan.auto_update && !wekan.purge && !wekan.update_now);
    assert_eq!(wekan.subdomain.as_deref(), Some("board"));
    // Asking again changes the choices, never the version the operator owns.
    store.set_target_version("wekan", "10.99.1").await.unwrap();
    let again = store
        .request_install("wekan", None, false, "9.0.0")
        .await
        .unwrap();
    assert_eq!(again.target_version, "10.99.1");
    assert_eq!(again.subdomain, None);
    assert!(!again.auto_update);

    let st = ReleaseStatus {
        state: AppState::Failed,
        reason: "chart pull error: no such host".into(),
        running_version: Some("10.99.0".into()),
        latest_version: Some("10.99.2".into()),
    };
    store.record_app_status("wekan", &st).await.unwrap();
    let got = store.installed_app("wekan").await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.reason.as_str()),
        (AppState::Failed, st.reason.as_str())
    );
    assert_eq!(got.latest_version.as_deref(), Some("10.99.2"));
    assert!(got.status_at.is_some());

    let upd = store
        .set_app_updates("wekan", Some(true), true)
        .await
        .unwrap();
    assert!(upd.auto_update && upd.update_now);
    store.set_target_version("wekan", "10.99.2").await.unwrap();
    assert!(
        !store
            .installed_app("wekan")
            .await
            .unwrap()
            .unwrap()
            .update_now
    );

    assert!(matches!(
        store.request_uninstall("zulip", false).await.unwrap_err(),
        StorageError::NotInstalled(_)
    ));
    assert!(matches!(
        store
            .set_app_updates("zulip", None, true)
            .await
            .unwrap_err(),
        StorageError::NotInstalled(_)
    ));
    // Forgetting only removes an app whose uninstall was asked for.
    store.forget_installed_app("wekan", false).await.unwrap();
    assert!(store.installed_app("wekan").await.unwrap().is_some());
    let gone = store.request_uninstall("wekan", true).await.unwrap();
    assert!(!gone.wanted && gone.purge);
    // Changing one's mind before the operator acts takes the uninstall back.
    let back = store
        .request_install("wekan", None, true, "1.0.0")
        .await
        .unwrap();
    assert!(back.wanted && !back.purge);
    store.request_uninstall("wekan", false).await.unwrap();
    store.forget_installed_app("wekan", false).await.unwrap();
    assert!(store.installed_apps().await.unwrap().is_empty());
}

async fn generated_secrets_are_sealed_and_never_replaced(store: &Store) {
    let first = vec![
        (
            "wekan".to_string(),
            "mongodb_password".to_string(),
            "s3cret-one".to_string(),
        ),
        (
            "wekan".to_string(),
            "oidc_client_secret".to_string(),
            "client-one".to_string(),
        ),
    ];
    store.add_generated_secrets(&first).await.unwrap();
    // A second replica generated other values a moment later: the first ones stay.
    let second = vec![
        (
            "wekan".to_string(),
            "mongodb_password".to_string(),
            "s3cret-two".to_string(),
        ),
        (
            "zulip".to_string(),
            "oidc_client_secret".to_string(),
            "zulip-one".to_string(),
        ),
    ];
    store.add_generated_secrets(&second).await.unwrap();
    let all = store.generated_secrets().await.unwrap();
    assert_eq!(all["wekan"]["mongodb_password"], "s3cret-one");
    assert_eq!(all["wekan"]["oidc_client_secret"], "client-one");
    assert_eq!(all["zulip"]["oidc_client_secret"], "zulip-one");
    // Purging an uninstalled app drops its secrets; a plain uninstall keeps them.
    store
        .request_install("zulip", None, true, "1.0.0")
        .await
        .unwrap();
    store.request_uninstall("zulip", false).await.unwrap();
    store.forget_installed_app("zulip", false).await.unwrap();
    assert!(
        store
            .generated_secrets()
            .await
            .unwrap()
            .contains_key("zulip")
    );
    store
        .request_install("wekan", None, true, "1.0.0")
        .await
        .unwrap();
    store.request_uninstall("wekan", true).await.unwrap();
    store.forget_installed_app("wekan", true).await.unwrap();
    assert!(
        !store
            .generated_secrets()
            .await
            .unwrap()
            .contains_key("wekan")
    );
}

async fn ping_and_backend(store: &Store) {
    store.ping().await.unwrap();
    assert!(["sqlite", "postgres"].contains(&store.backend_name()));
}

async fn platform_signals_count_people_and_queues(store: &Store) {
    use stackspin_storage::{OutgoingMail, PeopleSignals, QueueSignals};
    assert_eq!(
        store.people_signals().await.unwrap(),
        PeopleSignals::default()
    );
    assert_eq!(store.mail_signals().await.unwrap(), QueueSignals::default());
    let hash = HashParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    }
    .hash(&Password::new("correct horse battery staple").unwrap())
    .unwrap();
    let ada = store
        .create_user(&NewUser {
            password_hash: Some(hash.clone()),
            ..new_user("ada@example.org", true)
        })
        .await
        .unwrap();
    store
        .create_user(&NewUser {
            password_hash: Some(hash),
            ..new_user("bob@example.org", false)
        })
        .await
        .unwrap();
    // An invited admin: no password yet.
    store
        .create_user(&NewUser {
            password_hash: None,
            ..new_user("cy@example.org", true)
        })
        .await
        .unwrap();
    store
        .set_totp(ada.id, Some("sealed-secret"), &[])
        .await
        .unwrap();
    assert_eq!(
        store.people_signals().await.unwrap(),
        PeopleSignals {
            users: 3,
            active: 2,
            with_mfa: 1,
            admins: 1,
        }
    );

    for to in ["a@example.org", "b@example.org", "c@example.org"] {
        store
            .queue_mail(&OutgoingMail {
                to: to.into(),
                subject: "s".into(),
                body: "b".into(),
            })
            .await
            .unwrap();
    }
    let due = store.claim_due_mail(10).await.unwrap();
    store.mail_sent(due[0].id).await.unwrap();
    store
        .mail_failed(due[1].id, "421 try later", Some(chrono::Utc::now()))
        .await
        .unwrap();
    store
        .mail_failed(due[2].id, "550 no such user", None)
        .await
        .unwrap();
    let q = store.mail_signals().await.unwrap();
    assert_eq!((q.pending, q.retrying, q.given_up), (1, 1, 1), "{q:?}");
    assert_eq!(q.last_error.as_deref(), Some("421 try later"));
    let age = chrono::Utc::now() - q.oldest_pending.unwrap();
    assert!(age >= chrono::Duration::zero() && age < chrono::Duration::minutes(1));
    assert_eq!(
        store.logout_signals().await.unwrap(),
        QueueSignals::default()
    );
}

async fn alerts_mail_each_episode_once_and_observations_round_trip(store: &Store) {
    use stackspin_storage::{Alert, AlertChange, IncomingAlert, OutgoingMail};
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(10);
    let incoming = |firing: bool, starts_at| IncomingAlert {
        fingerprint: "f1".into(),
        name: "StackspinAppNotReady".into(),
        severity: "warning".into(),
        summary: "wekan is not working".into(),
        description: "d".into(),
        action: "a".into(),
        link: "https://dashboard.example.org/admin/apps".into(),
        labels: [("app".to_string(), "wekan".to_string())].into(),
        firing,
        starts_at,
        ends_at: None,
    };
    let mail = |a: &Alert, c: AlertChange| {
        Some(OutgoingMail {
            to: "admin@example.org".into(),
            subject: format!("{c:?}: {}", a.summary),
            body: "b".into(),
        })
    };
    let now = chrono::Utc::now();
    assert_eq!(
        store
            .record_alerts(&[incoming(true, t0)], now, &mail)
            .await
            .unwrap(),
        1
    );
    // Repeated deliveries of the same episode: no more mail.
    assert_eq!(
        store
            .record_alerts(&[incoming(true, t0)], now, &mail)
            .await
            .unwrap(),
        0
    );
    let firing = store
        .firing_alerts(now - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].labels["app"], "wekan");
    assert!(firing[0].mailed_at.is_some());
    // Not mentioned since: stale, not shown as firing.
    assert!(
        store
            .firing_alerts(now + chrono::Duration::seconds(1))
            .await
            .unwrap()
            .is_empty()
    );
    // Resolved: one mail; again: none.
    assert_eq!(
        store
            .record_alerts(&[incoming(false, t0)], now, &mail)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .record_alerts(&[incoming(false, t0)], now, &mail)
            .await
            .unwrap(),
        0
    );
    assert!(
        store
            .firing_alerts(now - chrono::Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    // A new episode mails again.
    let t1 = t0 + chrono::Duration::minutes(5);
    assert_eq!(
        store
            .record_alerts(&[incoming(true, t1)], now, &mail)
            .await
            .unwrap(),
        1
    );
    // An alert nobody is mailed about (the callback declines) resolves without a mail.
    let quiet = |_: &Alert, _: AlertChange| None;
    let mut other = incoming(true, t0);
    other.fingerprint = "f2".into();
    assert_eq!(
        store
            .record_alerts(&[other.clone()], now, &quiet)
            .await
            .unwrap(),
        0
    );
    other.firing = false;
    assert_eq!(store.record_alerts(&[other], now, &mail).await.unwrap(), 0);
    assert_eq!(store.pending_mail().await.unwrap(), 3);

    assert!(store.observation("nodes").await.unwrap().is_none());
    let body = serde_json::json!([{"name": "node-1", "ready": true}]);
    store.record_observation("nodes", &body, now).await.unwrap();
    let again = serde_json::json!([{"name": "node-1", "ready": false}]);
    store
        .record_observation("nodes", &again, now)
        .await
        .unwrap();
    let (seen, _) = store.observation("nodes").await.unwrap().unwrap();
    assert_eq!(seen, again);
}

/// The users list sorts numbers by value ("user2" before "user10", in emails and names, also
/// after an edit), and says of each person whether two-step verification is on, when they
/// last signed in, and which apps they may use.
async fn the_users_list_sorts_naturally_and_shows_what_admins_ask(store: &Store) {
    use stackspin_storage::{NewSession, UserPageRequest, UserSort};
    let mut made = vec![];
    for (addr, name) in [
        ("user10@example.org", "Member 3"),
        ("user2@example.org", "Member 20"),
        ("User1@example.org", "member 100"),
    ] {
        let mut u = new_user(addr, false);
        u.name = UserName::parse(name).unwrap();
        made.push(store.create_user(&u).await.unwrap());
    }
    let list = |sort, descending| UserPageRequest {
        query: None,
        sort,
        descending,
        page: 1,
        per_page: 10,
    };
    let emails = |p: &stackspin_storage::UserPage| -> Vec<String> {
        p.users.iter().map(|u| u.email.to_string()).collect()
    };
    let p = store
        .user_page(&list(UserSort::Email, false))
        .await
        .unwrap();
    assert_eq!(
        emails(&p),
        [
            "User1@example.org",
            "user2@example.org",
            "user10@example.org"
        ]
    );
    let p = store.user_page(&list(UserSort::Email, true)).await.unwrap();
    assert_eq!(emails(&p)[0], "user10@example.org");
    let p = store.user_page(&list(UserSort::Name, false)).await.unwrap();
    let names: Vec<&str> = p.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["Member 3", "Member 20", "member 100"]);
    // An edited name sorts by its new value.
    let patch = stackspin_storage::UserPatch {
        name: Some(UserName::parse("Member 1").unwrap()),
        ..Default::default()
    };
    store
        .update_user(made[2].id, made[2].updated_at, &patch)
        .await
        .unwrap();
    let p = store.user_page(&list(UserSort::Name, false)).await.unwrap();
    assert_eq!(p.users[0].email.as_str(), "User1@example.org");

    // Details: nobody has signed in, nobody has two-step, everyone may use both apps.
    for name in ["wiki", "notes"] {
        store
            .create_app(
                &new_app(name),
                stackspin_domain::ClientId(format!("cid-{name}")),
                None,
            )
            .await
            .unwrap();
    }
    let p = store
        .user_page(&list(UserSort::Email, false))
        .await
        .unwrap();
    assert_eq!(p.details.len(), 3);
    for d in &p.details {
        assert!(!d.two_step && d.last_login_at.is_none());
        let apps: Vec<&str> = d.apps.iter().map(|a| a.as_str()).collect();
        assert_eq!(apps, ["notes", "wiki"]);
    }
    let user1 = &p.users[0];
    store
        .set_role(&user1.email, &AppName::parse("wiki").unwrap(), Role::None)
        .await
        .unwrap();
    store.set_totp(user1.id, Some("secret"), &[]).await.unwrap();
    let before = chrono::Utc::now();
    store
        .create_session(&NewSession {
            token_hash: "h".into(),
            sid: "s".into(),
            user_id: user1.id,
            auth_time: before,
            amr: vec!["pwd".into()],
            expires_at: before + chrono::Duration::hours(1),
            ip: None,
            user_agent: None,
        })
        .await
        .unwrap();
    let p = store
        .user_page(&list(UserSort::Email, false))
        .await
        .unwrap();
    let d = &p.details[0];
    assert!(d.two_step);
    let at = d.last_login_at.unwrap();
    assert!((at - before).num_seconds().abs() < 5, "{at} vs {before}");
    let apps: Vec<&str> = d.apps.iter().map(|a| a.as_str()).collect();
    assert_eq!(apps, ["notes"]);
    assert!(!p.details[1].two_step && p.details[1].last_login_at.is_none());
}

macro_rules! on_both_backends {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let db = super::TestDb::sqlite().await;
                    super::$story(&db.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let db = super::TestDb::postgres().await;
                    assert_eq!(db.store.backend_name(), "postgres");
                    super::$story(&db.store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    users_are_unique_by_case_insensitive_email,
    users_round_trip_every_field,
    list_is_ordered_and_delete_removes,
    the_last_admin_cannot_be_deleted,
    an_invited_admin_is_not_an_admin_who_can_log_in,
    bootstrap_creates_the_first_admin_once,
    concurrent_bootstraps_create_exactly_one_admin,
    concurrent_writers_all_succeed,
    apps_register_list_and_remove,
    roles_default_change_and_cascade,
    user_pages_search_sort_and_page,
    the_users_list_sorts_naturally_and_shows_what_admins_ask,
    edits_detect_concurrent_changes,
    api_tokens_act_for_their_creator,
    default_role_changes_apply_to_new_users_only,
    app_status_counts_sign_ins_and_failing_logouts,
    installed_apps_requests_status_and_forgetting,
    generated_secrets_are_sealed_and_never_replaced,
    ping_and_backend,
    platform_signals_count_people_and_queues,
    alerts_mail_each_episode_once_and_observations_round_trip,
);

#[tokio::test]
async fn migrations_are_idempotent_across_restarts() {
    let (url, _dir) = stackspin_storage::testing::fresh_sqlite_url();
    let store = Store::connect(&url).await.unwrap();
    store
        .create_user(&new_user("keep@example.org", false))
        .await
        .unwrap();
    store.close().await;
    let again = Store::connect(&url).await.unwrap();
    assert_eq!(again.count_users().await.unwrap(), 1);

    let pg = stackspin_storage::testing::fresh_postgres_url().await;
    let a = Store::connect(&pg).await.unwrap();
    let b = Store::connect(&pg).await.unwrap();
    a.create_user(&new_user("keep@example.org", false))
        .await
        .unwrap();
    assert_eq!(b.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn unreachable_postgres_fails_fast_and_names_the_host() {
    let url = stackspin_domain::settings::DatabaseUrl::parse(
        "postgres://stackspin:hunter2@127.0.0.1:1/stackspin",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = Store::connect(&url).await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(12));
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot reach the database at 127.0.0.1:1"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(err.is_unavailable());
}

#[tokio::test]
async fn unwritable_sqlite_location_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let url = stackspin_domain::settings::DatabaseUrl::Sqlite(file.join("db.sqlite"));
    let msg = Store::connect(&url).await.unwrap_err().to_string();
    assert!(msg.starts_with("cannot reach the database at"), "{msg}");
}

#[tokio::test]
async fn commits_are_durable_and_files_private() {
    use std::os::unix::fs::PermissionsExt;
    let (url, dir) = stackspin_storage::testing::fresh_sqlite_url();
    let store = Store::connect(&url).await.unwrap();
    // FULL, not NORMAL: in WAL mode NORMAL can lose the last commits on power loss.
    assert_eq!(
        store.durability().await.unwrap(),
        "sqlite journal=wal synchronous=full"
    );
    store.ping().await.unwrap();
    let db = dir.path().join("test.sqlite");
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    for f in [db.clone(), wal.into()] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
    }
    // A database an earlier version left world-readable is tightened at start.
    store.close().await;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::connect(&url).await.unwrap();
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    store.close().await;
    if let Ok(pg) = std::env::var(stackspin_storage::testing::POSTGRES_ENV)
        && !pg.is_empty()
    {
        let db = stackspin_storage::testing::TestDb::postgres().await;
        assert_eq!(
            db.store.durability().await.unwrap(),
            "postgres synchronous_commit=on"
        );
    }
}
