//! The admin Users pages: only admins, server-side search/sort/pages, adding with roles.
#![allow(clippy::unwrap_used)]

mod support;

use stackspin_domain::{AppName, Email, NewUser, Role, UserName};
use support::*;

#[tokio::test]
async fn non_admins_cannot_open_or_post_the_admin_pages() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    for path in ["/admin/users", "/admin/users/new"] {
        assert_eq!(
            b.get(p.url(path)).send().await.unwrap().status(),
            403,
            "{path}"
        );
    }
    let page = b
        .get(p.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("nav-users"), "no Users link for non-admins");
    let csrf = hidden_value(&page, "csrf");
    let resp = b
        .post(p.url("/admin/users"))
        .form(&[
            ("name", "X"),
            ("email", "x@example.org"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(p.store.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn the_users_table_searches_sorts_and_pages_on_the_server() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    for i in 0..60 {
        p.store
            .create_user(&NewUser {
                email: Email::parse(&format!("member{i:02}@example.org")).unwrap(),
                name: UserName::parse(&format!("Member {i:02}")).unwrap(),
                password_hash: None,
                is_admin: false,
            })
            .await
            .unwrap();
    }
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let html = b
        .get(p.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("<td>member").count(), 50, "50 a page");
    assert!(
        html.contains("61 users") && html.contains("Page 1 of 2"),
        "{html}"
    );
    assert!(html.contains("aria-sort=\"ascending\""));
    let html = b
        .get(p.url("/admin/users?page=2"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("<td>member").count(), 10);
    assert!(html.contains("<td>root@example.org</td>"));
    let html = b
        .get(p.url("/admin/users?q=MEMBER0"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("10 users matching"), "{html}");
    let html = b
        .get(p.url("/admin/users?sort=name&order=desc"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let first = html.find("<td>member59@example.org</td>").unwrap();
    let second = html.find("<td>member58@example.org</td>").unwrap();
    assert!(first < second, "descending by name");
}

#[tokio::test]
async fn adding_a_user_validates_next_to_fields_and_sends_an_invitation() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let page = b
        .get(p.url("/admin/users/new"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"role.wiki\""), "a role choice per app");
    let csrf = hidden_value(&page, "csrf");

    let resp = b
        .post(p.url("/admin/users"))
        .form(&[
            ("name", " "),
            ("email", "not-an-email"),
            ("role.wiki", "admin"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("id=\"name-error\"") && html.contains("id=\"email-error\""),
        "{html}"
    );
    assert!(
        html.contains("value=\"not-an-email\""),
        "what was typed is kept"
    );

    let resp = b
        .post(p.url("/admin/users"))
        .form(&[
            ("name", "Ada"),
            ("email", "ada@example.org"),
            ("is_admin", "yes"),
            ("role.wiki", "admin"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/admin/users?created=ada%40example.org");
    let ada = p
        .store
        .user_by_email(&Email::parse("ada@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(ada.is_admin && !ada.has_password());
    assert_eq!(
        p.store.roles_of(ada.id).await.unwrap(),
        [(AppName::parse("wiki").unwrap(), Role::Admin)]
    );
    assert_eq!(
        p.store.pending_mail().await.unwrap(),
        1,
        "invitation queued"
    );
    let html = b
        .get(p.url("/admin/users?created=ada%40example.org"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Added ada@example.org"));

    let resp = b
        .post(p.url("/admin/users"))
        .form(&[
            ("name", "Again"),
            ("email", "ADA@example.org"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert!(resp.text().await.unwrap().contains("already exists"));
}
