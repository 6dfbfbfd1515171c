//! What the user reads, in Simplified Chinese (the user manual's wording) and English, chosen
//! by Accept-Language. Responses carry a stable `code` beside the text, so pages and tests
//! never match on wording.

pub use host_driver::lang::Lang;

/// Every message a user can get from a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    LoggedIn,
    WrongPassword,
    AccountLocked { minutes: i64 },
    NoBindingYet,
    WrongPin { attempts_left: u8 },
    PinLocked,
    CertExpiring { date: String, days: i64 },
    CertExpired { date: String },
    CertRevoked { reason: String },
    CertNotTrusted,
    NotBound,
    ChooseAccount,
    Bound { count: usize },
    Unbound { count: usize },
}

impl Msg {
    /// The stable code of the message.
    pub fn code(&self) -> &'static str {
        match self {
            Msg::LoggedIn => "logged_in",
            Msg::WrongPassword => "wrong_password",
            Msg::AccountLocked { .. } => "account_locked",
            Msg::NoBindingYet => "no_binding_yet",
            Msg::WrongPin { .. } => "wrong_pin",
            Msg::PinLocked => "pin_locked",
            Msg::CertExpiring { .. } => "cert_expiring",
            Msg::CertExpired { .. } => "cert_expired",
            Msg::CertRevoked { .. } => "cert_revoked",
            Msg::CertNotTrusted => "cert_not_trusted",
            Msg::NotBound => "not_bound",
            Msg::ChooseAccount => "choose_account",
            Msg::Bound { .. } => "bound",
            Msg::Unbound { .. } => "unbound",
        }
    }

    pub fn text(&self, lang: Lang) -> String {
        match (self, lang) {
            (Msg::LoggedIn, Lang::Zh) => "登录成功".into(),
            (Msg::LoggedIn, Lang::En) => "Logged in".into(),
            (Msg::WrongPassword, Lang::Zh) => "用户名或密码错误".into(),
            (Msg::WrongPassword, Lang::En) => "Wrong username or password".into(),
            (Msg::AccountLocked { minutes }, Lang::Zh) => format!("密码错误次数过多，账号已锁定，请{minutes}分钟后再试"),
            (Msg::AccountLocked { minutes }, Lang::En) => {
                format!("Too many wrong passwords: the account is locked, try again in {minutes} minutes")
            }
            (Msg::NoBindingYet, Lang::Zh) => "系统检测到您尚未将账号与CA数字证书进行绑定，请先绑定CA账号".into(),
            (Msg::NoBindingYet, Lang::En) => {
                "Your accounts are not bound to a CA certificate yet: bind your USB-Key to an account".into()
            }
            (Msg::WrongPin { attempts_left }, Lang::Zh) => format!("USB-Key密码校验失败，还有{attempts_left}次机会"),
            (Msg::WrongPin { attempts_left }, Lang::En) => {
                format!("USB-Key PIN verification failed, {attempts_left} attempts left")
            }
            (Msg::PinLocked, Lang::Zh) => "USB-Key密码已锁定，请使用PUK解锁（ukey pin unblock）或联系管理员".into(),
            (Msg::PinLocked, Lang::En) => {
                "The USB-Key PIN is locked: unblock it with the PUK (ukey pin unblock) or contact your administrator"
                    .into()
            }
            (Msg::CertExpiring { date, days }, Lang::Zh) => {
                format!("登录成功。您的数字证书将于{date}到期（剩余{days}天），请及时办理证书更新")
            }
            (Msg::CertExpiring { date, days }, Lang::En) => {
                format!("Logged in. Your certificate expires on {date} ({days} days left): renew it in time")
            }
            (Msg::CertExpired { date }, Lang::Zh) => format!("数字证书已于{date}过期，无法登录，请办理证书更新"),
            (Msg::CertExpired { date }, Lang::En) => {
                format!("The certificate expired on {date}: login refused, renew the certificate")
            }
            (Msg::CertRevoked { reason }, Lang::Zh) => format!("数字证书已被吊销（{reason}），无法登录"),
            (Msg::CertRevoked { reason }, Lang::En) => format!("The certificate was revoked ({reason}): login refused"),
            (Msg::CertNotTrusted, Lang::Zh) => "数字证书不是本系统认可的CA签发的，无法登录".into(),
            (Msg::CertNotTrusted, Lang::En) => "The certificate was not issued by a CA this system trusts".into(),
            (Msg::NotBound, Lang::Zh) => "该USB-Key尚未绑定账号，请先使用账号密码登录系统进行绑定，再使用CA账户登录".into(),
            (Msg::NotBound, Lang::En) => {
                "This USB-Key is not bound to an account: bind the key to an account first, by logging in with your password"
                    .into()
            }
            (Msg::ChooseAccount, Lang::Zh) => "该USB-Key绑定了多个账号，请选择要登录的账号".into(),
            (Msg::ChooseAccount, Lang::En) => "This USB-Key is bound to several accounts: choose one".into(),
            (Msg::Bound { count }, Lang::Zh) => format!("绑定成功（{count}个账号）"),
            (Msg::Bound { count }, Lang::En) => format!("Bound ({count} accounts)"),
            (Msg::Unbound { count }, Lang::Zh) => format!("解除绑定成功（{count}个账号）"),
            (Msg::Unbound { count }, Lang::En) => format!("Unbound ({count} accounts)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outcomes_say_what_the_manual_says() {
        let m = Msg::WrongPin { attempts_left: 2 };
        assert_eq!(m.code(), "wrong_pin");
        assert!(m.text(Lang::Zh).contains("还有2次机会"));
        assert!(m.text(Lang::En).contains("2 attempts left"));
        assert!(Msg::NotBound.text(Lang::Zh).contains("请先使用账号密码登录"));
        assert!(Msg::NotBound
            .text(Lang::En)
            .contains("bind the key to an account first, by logging in with your password"));
        let e = Msg::CertExpiring { date: "2026-12-01".into(), days: 6 };
        assert!(e.text(Lang::Zh).contains("2026-12-01") && e.text(Lang::En).contains("6 days left"));
    }
}
