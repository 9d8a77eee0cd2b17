//! Stackspin's domain: the words the rest of the system speaks (users, apps, per-app roles,
//! settings) and the rules that make a value of each valid.
//!
//! Architecture invariant: this crate does no I/O. It does not know about databases, HTTP,
//! the file system or the clock's source beyond `chrono::Utc::now` being passed in by callers.
//! Values are parsed at the edge (`Email::parse`, `RedirectUri::parse`, ...) so that code
//! holding one of these types never has to re-check it.

pub mod app;
pub mod brand;
pub mod client_ip;
pub mod device;
pub mod email;
pub mod mail;
pub mod password;
pub mod retry;
pub mod return_to;
pub mod role;
pub mod sealing;
pub mod secret;
pub mod settings;
pub mod size;
pub mod status;
pub mod user;

pub use app::{App, AppId, AppName, ClientId, NewApp, RedirectUri, SigningAlg};
pub use email::Email;
pub use role::Role;
pub use user::{NewUser, User, UserId, UserName};
