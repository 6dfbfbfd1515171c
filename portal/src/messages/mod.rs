//! What the user reads, in Simplified Chinese (the user manual's wording) and English: the one
//! catalog of the portal. [`Msg`] is every outcome of a call (the JSON API's `message`, and the
//! pages show the same text); [`text`] is the words of the pages themselves (labels, buttons,
//! headings). The language is the pages' switch (a cookie), else Accept-Language, else
//! Chinese. Answers carry a stable `code` beside the text, so pages and tests never match on
//! wording.

pub mod text;

pub use host_driver::lang::Lang;

/// Every message a user can get from a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    LoggedIn,
    WrongPassword,
    /// Too many wrong passwords from this client for this username: it waits.
    SlowDown {
        secs: i64,
    },
    NoBindingYet,
    WrongPin {
        attempts_left: u8,
    },
    PinLocked,
    CertExpiring {
        date: String,
        days: i64,
    },
    CertExpired {
        date: String,
    },
    CertRevoked {
        reason: String,
    },
    CertNotTrusted,
    NotBound,
    /// Bind: the certificate names another enterprise (or none).
    OtherEnterprise,
    ChooseAccount,
    Bound {
        count: usize,
    },
    Unbound {
        count: usize,
    },
    /// The key answered a challenge that was spent (a replay, or a second try).
    ChallengeUsed,
    /// The key answered a challenge this session no longer holds (a newer one replaced it, or
    /// it belongs to another session).
    ChallengeReplaced,
    /// The key answered after the challenge's lifetime.
    ChallengeExpired {
        minutes: i64,
    },
    // Certificate application (证书新办).
    FormInvalid,
    OrderReview,
    OrderConfirmed,
    PhotoUploaded,
    PhotoType,
    PhotoSize {
        min_kb: usize,
        max_kb: usize,
    },
    PhotosMissing,
    /// A JPEG or PNG by its first bytes that does not decode.
    PhotoUnreadable,
    /// Sides or pixel count outside the limits.
    PhotoDimensions {
        min_side: u32,
        max_side: u32,
        max_megapixels: u64,
    },
    SmsSent {
        to: String,
        minutes: i64,
    },
    SmsWrong {
        attempts_left: i64,
    },
    SmsExpired,
    SmsTooMany,
    SmsTooSoon {
        secs: i64,
    },
    SmsConfirmed,
    /// The hourly (or daily) cap on SMS codes to this number or by this user.
    SmsCap {
        day: bool,
    },
    PayWith {
        method_zh: &'static str,
        method_en: &'static str,
        amount: String,
    },
    Applied,
    WrongStage {
        stage: &'static str,
    },
    Approved,
    Rejected {
        reason: String,
    },
    StaffOnly,
    /// Four eyes: the reviewer filed the application.
    OwnApplication,
    /// Staff revoked a certificate.
    Revoked {
        reason: String,
    },
    /// The application's key pair has no valid attestation from a trusted manufacturer.
    NotAttested,
    /// The key pair works without its PIN (PIN policy "never").
    KeyWithoutPin,
}

impl Msg {
    /// The stable code of the message.
    pub fn code(&self) -> &'static str {
        match self {
            Msg::LoggedIn => "logged_in",
            Msg::WrongPassword => "wrong_password",
            Msg::SlowDown { .. } => "slow_down",
            Msg::NoBindingYet => "no_binding_yet",
            Msg::WrongPin { .. } => "wrong_pin",
            Msg::PinLocked => "pin_locked",
            Msg::CertExpiring { .. } => "cert_expiring",
            Msg::CertExpired { .. } => "cert_expired",
            Msg::CertRevoked { .. } => "cert_revoked",
            Msg::CertNotTrusted => "cert_not_trusted",
            Msg::NotBound => "not_bound",
            Msg::OtherEnterprise => "other_enterprise",
            Msg::ChooseAccount => "choose_account",
            Msg::Bound { .. } => "bound",
            Msg::Unbound { .. } => "unbound",
            Msg::ChallengeUsed | Msg::ChallengeReplaced | Msg::ChallengeExpired { .. } => "bad_nonce",
            Msg::FormInvalid => "form_invalid",
            Msg::OrderReview => "order_review",
            Msg::OrderConfirmed => "order_confirmed",
            Msg::PhotoUploaded => "photo_uploaded",
            Msg::PhotoType => "photo_type",
            Msg::PhotoSize { .. } => "photo_size",
            Msg::PhotosMissing => "photos_missing",
            Msg::PhotoUnreadable => "photo_unreadable",
            Msg::PhotoDimensions { .. } => "photo_dimensions",
            Msg::SmsSent { .. } => "sms_sent",
            Msg::SmsWrong { .. } => "sms_wrong",
            Msg::SmsExpired => "sms_expired",
            Msg::SmsTooMany => "sms_too_many",
            Msg::SmsTooSoon { .. } => "sms_too_soon",
            Msg::SmsConfirmed => "sms_confirmed",
            Msg::SmsCap { .. } => "sms_cap",
            Msg::PayWith { .. } => "pay",
            Msg::Applied => "applied",
            Msg::WrongStage { .. } => "wrong_stage",
            Msg::Approved => "approved",
            Msg::Rejected { .. } => "rejected",
            Msg::StaffOnly => "staff_only",
            Msg::OwnApplication => "own_application",
            Msg::Revoked { .. } => "revoked",
            Msg::NotAttested => "not_attested",
            Msg::KeyWithoutPin => "key_without_pin",
        }
    }

    pub fn text(&self, lang: Lang) -> String {
        match (self, lang) {
            (Msg::LoggedIn, Lang::Zh) => "登录成功".into(),
            (Msg::LoggedIn, Lang::En) => "Logged in".into(),
            (Msg::WrongPassword, Lang::Zh) => "用户名或密码错误".into(),
            (Msg::WrongPassword, Lang::En) => "Wrong username or password".into(),
            (Msg::SlowDown { secs }, Lang::Zh) => format!("密码错误次数过多，请{secs}秒后再试"),
            (Msg::SlowDown { secs }, Lang::En) => {
                format!("Too many wrong passwords: wait {secs} seconds before trying again")
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
            (Msg::OtherEnterprise, Lang::Zh) => "该USB-Key属于其他单位，无法绑定".into(),
            (Msg::OtherEnterprise, Lang::En) => {
                "This USB-Key belongs to another enterprise: it cannot be bound to your accounts".into()
            }
            (Msg::ChooseAccount, Lang::Zh) => "该USB-Key绑定了多个账号，请选择要登录的账号".into(),
            (Msg::ChooseAccount, Lang::En) => "This USB-Key is bound to several accounts: choose one".into(),
            (Msg::Bound { count }, Lang::Zh) => format!("绑定成功（{count}个账号）"),
            (Msg::Bound { count }, Lang::En) => format!("Bound ({count} accounts)"),
            (Msg::Unbound { count }, Lang::Zh) => format!("解除绑定成功（{count}个账号）"),
            (Msg::Unbound { count }, Lang::En) => format!("Unbound ({count} accounts)"),
            (Msg::ChallengeUsed, Lang::Zh) => "本次登录验证已使用，请重新点击登录".into(),
            (Msg::ChallengeUsed, Lang::En) => {
                "This session has no open challenge (it was used): log in again for a new one".into()
            }
            (Msg::ChallengeReplaced, Lang::Zh) => "登录验证已失效（已有新的登录请求，或不属于当前会话），请重新点击登录".into(),
            (Msg::ChallengeReplaced, Lang::En) => {
                "Not this session's current challenge (a newer one replaced it, or it is another session's): log in again"
                    .into()
            }
            (Msg::ChallengeExpired { minutes }, Lang::Zh) => format!("登录验证已超时（{minutes}分钟内有效），请重新点击登录"),
            (Msg::ChallengeExpired { minutes }, Lang::En) => {
                format!("The login challenge expired (it lasts {minutes} minutes): log in again")
            }
            (Msg::FormInvalid, Lang::Zh) => "证书申请信息填写有误，请检查标*的必填项".into(),
            (Msg::FormInvalid, Lang::En) => "Some fields of the application are wrong: see `fields`".into(),
            (Msg::OrderReview, Lang::Zh) => {
                "请经办人审核填写信息，确认无误后点击“确认订单”，如信息有误，则点击“返回修改”".into()
            }
            (Msg::OrderReview, Lang::En) => {
                "Check the application: confirm the order if it is right, or go back and edit it".into()
            }
            (Msg::OrderConfirmed, Lang::Zh) => "订单已确认，请按照证件提示要求上传证件照片".into(),
            (Msg::OrderConfirmed, Lang::En) => "Order confirmed: upload the ID card photos".into(),
            (Msg::PhotoUploaded, Lang::Zh) => "证件照片上传成功".into(),
            (Msg::PhotoUploaded, Lang::En) => "ID photo uploaded".into(),
            (Msg::PhotoUnreadable, Lang::Zh) => "证件照片无法识别（文件已损坏或不完整），请重新拍摄或选择图片".into(),
            (Msg::PhotoUnreadable, Lang::En) => {
                "The ID photo cannot be read (damaged or incomplete file): take or choose it again".into()
            }
            (Msg::PhotoDimensions { min_side, max_side, max_megapixels }, Lang::Zh) => {
                format!("证件照片尺寸不符合要求：每边{min_side}至{max_side}像素，总像素不超过{max_megapixels}百万")
            }
            (Msg::PhotoDimensions { min_side, max_side, max_megapixels }, Lang::En) => format!(
                "The ID photo's size is out of bounds: {min_side} to {max_side} pixels a side, at most {max_megapixels} megapixels"
            ),
            (Msg::PhotoType, Lang::Zh) => "证件照片格式不正确，请上传JPG或PNG格式的图片".into(),
            (Msg::PhotoType, Lang::En) => "The ID photo must be a JPEG or PNG image".into(),
            (Msg::PhotoSize { min_kb, max_kb }, Lang::Zh) => format!("证件照片大小应在{min_kb}KB至{max_kb}KB之间"),
            (Msg::PhotoSize { min_kb, max_kb }, Lang::En) => {
                format!("The ID photo must be between {min_kb} KB and {max_kb} KB")
            }
            (Msg::PhotosMissing, Lang::Zh) => "请先上传证件照片（人像面和国徽面）".into(),
            (Msg::PhotosMissing, Lang::En) => "Upload both sides of the ID card first".into(),
            (Msg::SmsSent { to, minutes }, Lang::Zh) => format!("验证码已发送至{to}，{minutes}分钟内有效"),
            (Msg::SmsSent { to, minutes }, Lang::En) => {
                format!("A verification code was sent to {to}; it is valid for {minutes} minutes")
            }
            (Msg::SmsWrong { attempts_left }, Lang::Zh) => format!("验证码错误，还有{attempts_left}次机会"),
            (Msg::SmsWrong { attempts_left }, Lang::En) => {
                format!("Wrong verification code, {attempts_left} attempts left")
            }
            (Msg::SmsExpired, Lang::Zh) => "验证码已过期，请重新获取".into(),
            (Msg::SmsExpired, Lang::En) => "The verification code has expired: ask for a new one".into(),
            (Msg::SmsTooMany, Lang::Zh) => "验证码错误次数过多，请重新获取验证码".into(),
            (Msg::SmsTooMany, Lang::En) => "Too many wrong codes: ask for a new verification code".into(),
            (Msg::SmsTooSoon { secs }, Lang::Zh) => format!("请{secs}秒后再重新获取验证码"),
            (Msg::SmsTooSoon { secs }, Lang::En) => format!("Wait {secs} seconds before asking for a new code"),
            (Msg::SmsConfirmed, Lang::Zh) => "证书申请签名确认成功，请选择微信或支付宝完成支付".into(),
            (Msg::SmsConfirmed, Lang::En) => "Application confirmed: pay with WeChat Pay or Alipay".into(),
            (Msg::SmsCap { day: true }, Lang::Zh) => "今日获取验证码次数已达上限，请明天再试".into(),
            (Msg::SmsCap { day: false }, Lang::Zh) => "获取验证码过于频繁，请一小时后再试".into(),
            (Msg::SmsCap { day: true }, Lang::En) => "No more verification codes today: try again tomorrow".into(),
            (Msg::SmsCap { day: false }, Lang::En) => "Too many verification codes: try again in an hour".into(),
            (Msg::PayWith { method_zh, amount, .. }, Lang::Zh) => format!("请使用{method_zh}支付{amount}元"),
            (Msg::PayWith { method_en, amount, .. }, Lang::En) => format!("Pay ¥{amount} with {method_en}"),
            (Msg::Applied, Lang::Zh) => "数字证书申请成功，请等待工作人员审核证书材料".into(),
            (Msg::Applied, Lang::En) => "Application received: staff will now review your materials".into(),
            (Msg::WrongStage { stage }, Lang::Zh) => format!("申请当前处于“{}”阶段，不能进行此操作", stage_zh(stage)),
            (Msg::WrongStage { stage }, Lang::En) => format!("Not possible now: the application is at stage {stage}"),
            (Msg::Approved, Lang::Zh) => "审核通过，数字证书已签发".into(),
            (Msg::Approved, Lang::En) => "Approved: the certificate is issued".into(),
            (Msg::Rejected { reason }, Lang::Zh) => format!("审核未通过：{reason}"),
            (Msg::Rejected { reason }, Lang::En) => format!("Application rejected: {reason}"),
            (Msg::StaffOnly, Lang::Zh) => "仅工作人员可以审核证书申请".into(),
            (Msg::StaffOnly, Lang::En) => "Only staff may review applications".into(),
            (Msg::OwnApplication, Lang::Zh) => "不能审核本人提交的证书申请，请由其他工作人员审核".into(),
            (Msg::OwnApplication, Lang::En) => {
                "You filed this application: another member of staff must review it".into()
            }
            (Msg::Revoked { reason }, Lang::Zh) => format!("证书已吊销（{reason}），该USB-Key不能再登录"),
            (Msg::Revoked { reason }, Lang::En) => format!("Certificate revoked ({reason}): the USB-Key no longer logs in"),
            (Msg::NotAttested, Lang::Zh) => "该密钥不是在USB-Key内生成的，无法申请证书".into(),
            (Msg::NotAttested, Lang::En) => {
                "The key was not generated on a USB-Key: no certificate can be applied for with it".into()
            }
            (Msg::KeyWithoutPin, Lang::Zh) => "该密钥使用时无需输入USB-Key密码，无法申请证书，请重新生成密钥".into(),
            (Msg::KeyWithoutPin, Lang::En) => {
                "The key can be used without its PIN: generate a new key pair that asks for the PIN".into()
            }
        }
    }
}

/// The calendar day (UTC) of a unix time, as messages print it.
pub fn day(unix: i64) -> String {
    let t = host_driver::certinfo::format_time(unix.max(0) as u64);
    t.get(..10).unwrap_or(&t).to_string()
}

/// An application stage as the user's pages name it.
/// A stage's name in `lang`: the manual's words in Chinese, the stage's code in English.
pub fn stage_name(stage: &str, lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => stage_zh(stage),
        Lang::En => match stage {
            "review" => "Order review",
            "photos" => "ID photos",
            "sms" => "SMS confirmation",
            "payment" => "Payment",
            "under_review" => "Under review",
            "issued" => "Issued",
            "rejected" => "Rejected",
            _ => "Unknown",
        },
    }
}

pub fn stage_zh(stage: &str) -> &'static str {
    match stage {
        "review" => "订单审核",
        "photos" => "上传证件照片",
        "sms" => "短信验证",
        "payment" => "证书支付",
        "under_review" => "等待审核",
        "issued" => "已签发",
        "rejected" => "审核未通过",
        _ => "未知",
    }
}

/// What the form says of a refused field.
pub fn field_problem(field: &str, error: crate::validate::FieldError, lang: Lang) -> String {
    use crate::validate::FieldError as E;
    let (zh, en) = match field {
        "organisation" => ("单位名称", "Organisation"),
        "credit_code" => ("统一社会信用代码", "Unified social credit code"),
        "handler_name" => ("经办人姓名", "Handler's name"),
        "id_number" => ("经办人身份证号", "Handler's ID number"),
        "mobile" => ("经办人手机号", "Handler's mobile"),
        "email" => ("电子邮箱", "Email"),
        _ => (field, field),
    };
    match (lang, error) {
        (Lang::Zh, E::Empty) => format!("{zh}为必填项"),
        (Lang::Zh, E::Length) => format!("{zh}长度不正确"),
        (Lang::Zh, E::Characters) => format!("{zh}含有无效字符"),
        (Lang::Zh, E::CheckDigit) => format!("{zh}校验位错误，请核对"),
        (Lang::Zh, E::BirthDate) => format!("{zh}中的出生日期无效"),
        (Lang::Zh, E::Format) => format!("{zh}格式不正确"),
        (Lang::Zh, E::Fixed) => format!("{zh}以单位档案为准，不能修改"),
        (Lang::En, E::Empty) => format!("{en} is required"),
        (Lang::En, E::Length) => format!("{en} has the wrong length"),
        (Lang::En, E::Characters) => format!("{en} has characters it cannot have"),
        (Lang::En, E::CheckDigit) => format!("{en}: the check character is wrong"),
        (Lang::En, E::BirthDate) => format!("{en}: the birth date in it is not a real date"),
        (Lang::En, E::Format) => format!("{en} is not in the right form"),
        (Lang::En, E::Fixed) => format!("{en} comes from your enterprise's record and cannot be changed"),
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

    #[test]
    fn civil_dates() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(1_790_000_000), "2026-09-21");
        assert_eq!(day(951_782_400), "2000-02-29");
    }
}
