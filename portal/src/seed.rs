//! The demo enterprise every ukey story uses (the manual's 示例科技有限公司 with user zhangsan,
//! staff member lisi and two accounts to bind), defined once: `ukey portal seed`, `ukey flows`
//! and `ukey demo`, the benches and the tests all seed it from here, and the virtual keys'
//! default subject names its credit code, which binding checks.

use crate::password::{self, Cost};
use crate::store::{Account, Enterprise, Result, Store, User};

/// The demo enterprise's name and unified social credit code.
pub const ENTERPRISE: &str = "示例科技有限公司";
pub const CREDIT_CODE: &str = "91350100M000100Y43";
/// Another enterprise, whose keys must not bind to the demo's accounts.
pub const OTHER_ENTERPRISE: &str = "另一家科技有限公司";
pub const OTHER_CREDIT_CODE: &str = "91110000600037341L";
/// The demo user and the staff member who reviews certificate applications.
pub const USER: (&str, &str) = ("zhangsan", "张三");
pub const STAFF: (&str, &str) = ("lisi", "李四（审核员）");
/// The accounts the demo user may bind a key to.
pub const ACCOUNTS: [&str; 2] = ["财务账号", "申报账号"];
/// A virtual key's default certificate subject: it binds to the demo's accounts (clap needs
/// the literal; a test checks it names [`CREDIT_CODE`] and [`ENTERPRISE`]).
pub const DEFAULT_SUBJECT: &str = "CN=ukey test user,organizationIdentifier=91350100M000100Y43,O=示例科技有限公司";

/// The subject of a key for `cn` in the demo enterprise (or the other one).
pub fn subject(cn: &str, other: bool) -> String {
    let (code, name) = if other { (OTHER_CREDIT_CODE, OTHER_ENTERPRISE) } else { (CREDIT_CODE, ENTERPRISE) };
    format!("CN={cn},organizationIdentifier={code},O={name}")
}

/// What [`seed`] made.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub enterprise: Enterprise,
    pub user: User,
    pub staff: Option<User>,
    pub accounts: Vec<Account>,
}

/// Add the demo enterprise, its user (with `password`), its staff member (with
/// `staff_password`, if given) and its accounts. An enterprise already there is
/// `StoreError::Exists`.
pub async fn seed(store: &Store, password: &str, staff_password: Option<&str>, cost: Cost, now: i64) -> Result<Seeded> {
    let enterprise = store.create_enterprise(ENTERPRISE, CREDIT_CODE, now).await?;
    let user = store.create_user(&enterprise.id, USER.0, USER.1, &password::hash(password, cost), now).await?;
    let staff = match staff_password {
        Some(p) => {
            let s = store.create_user(&enterprise.id, STAFF.0, STAFF.1, &password::hash(p, cost), now).await?;
            store.set_role(&s.id, "staff").await?;
            Some(s)
        }
        None => None,
    };
    let mut accounts = Vec::new();
    for name in ACCOUNTS {
        accounts.push(store.create_account(&enterprise.id, name, now).await?);
    }
    Ok(Seeded { enterprise, user, staff, accounts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_subject_names_the_demo_enterprise() {
        assert_eq!(DEFAULT_SUBJECT, subject("ukey test user", false));
        assert!(
            crate::validate::credit_code(CREDIT_CODE).is_ok()
                && crate::validate::credit_code(OTHER_CREDIT_CODE).is_ok()
        );
    }
}
