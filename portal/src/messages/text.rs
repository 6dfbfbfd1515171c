//! The words of the pages, in Simplified Chinese (the user manual's) and English: labels,
//! buttons, headings. Outcomes are [`Msg`](super::Msg)s, shown in the page as the API words
//! them. A unit test checks that every key a template or script uses is here.

use crate::messages::Lang;

/// (key, zh-CN, English).
const TEXTS: &[(&str, &str, &str)] = &[
    ("site.name", "ukey 业务系统", "ukey business system"),
    ("site.skip", "跳到主要内容", "Skip to main content"),
    ("lang.switch", "English", "中文"),
    ("login.title", "登录", "Log in"),
    ("login.tabs", "登录方式", "How to log in"),
    ("login.tab.password", "账号密码登录", "Password login"),
    ("login.tab.ca", "CA数字证书登录", "USB-Key (CA) login"),
    ("login.username", "用户名", "Username"),
    ("login.password", "密码", "Password"),
    ("login.submit", "登录", "Log in"),
    ("login.account", "账号", "Account"),
    ("login.pin", "USB-Key密码", "USB-Key PIN"),
    ("login.choose_key", "请选择USB-Key", "Choose a USB-Key"),
    ("login.apply", "CA数字证书注册申请", "Apply for a CA certificate"),
    ("agent.connecting", "正在连接证书应用环境…", "Connecting to the certificate application environment…"),
    ("agent.missing", "未检测到证书应用环境，请先下载并安装。", "The certificate application environment is not running: download and install it first."),
    ("agent.download", "证书应用环境下载", "Download the certificate application environment"),
    ("agent.no_key", "请将USB-Key插入电脑USB口", "Insert your USB-Key into a USB port"),
    ("agent.key_error", "无法读取该USB-Key", "This USB-Key cannot be read"),
    ("agent.no_cert", "该USB-Key中没有证书", "This USB-Key holds no certificate"),
    ("pin.last_try.title", "最后一次机会", "Last attempt"),
    ("pin.last_try.confirm", "确认，继续登录", "Confirm and log in"),
    ("pin.last_try.cancel", "取消", "Cancel"),
    ("pin.required", "请输入USB-Key密码", "Enter the USB-Key PIN"),
    ("form.required", "必填项", "Required"),
    ("form.username_required", "请输入用户名", "Enter your username"),
    ("form.password_required", "请输入密码", "Enter your password"),
    ("error.network", "无法连接业务系统，请稍后再试", "The business system cannot be reached; try again later"),
    ("login.choose_account", "该USB-Key绑定了多个账号，请选择要登录的账号", "This USB-Key is bound to several accounts: choose one"),
    ("home.title", "系统首页", "Home"),
    ("home.account", "当前账号：", "Account: "),
    ("home.user", "当前用户：", "User: "),
    ("home.logout", "退出登录", "Log out"),
    ("accounts.title", "企业账号管理", "Enterprise accounts"),
    ("accounts.caption", "本单位的账号及其CA数字证书绑定情况", "Your enterprise's accounts and their USB-Key bindings"),
    ("accounts.tick", "勾选", "Tick"),
    ("accounts.name", "账号名称", "Account"),
    ("accounts.state", "是否绑定", "Bound"),
    ("accounts.bound", "已绑定", "Bound"),
    ("accounts.unbound", "未绑定", "Not bound"),
    ("accounts.bind", "绑定CA账号", "Bind to USB-Key"),
    ("accounts.tick_one", "请至少勾选一个账号", "Tick at least one account"),
    ("bind.title", "绑定CA账号验证", "Confirm the binding with your USB-Key"),
    ("bind.confirm", "确定", "Confirm"),
    ("welcome.title", "提示", "Notice"),
    (
        "welcome.text",
        "系统检测到您尚未将账号与CA数字证书进行绑定，请先绑定CA账号",
        "None of your accounts is bound to a USB-Key yet: bind one first",
    ),
    ("welcome.later", "稍后", "Later"),
    ("welcome.bind", "立即绑定", "Bind now"),
    ("unbind.title", "证书解绑", "Unbind"),
    ("unbind.caption", "已绑定CA数字证书的账号", "Accounts bound to a USB-Key"),
    ("unbind.none", "没有已绑定的账号", "No account is bound"),
    ("unbind.submit", "解除绑定", "Unbind"),
    ("apply.link", "CA数字证书注册申请", "Apply for a CA certificate"),
    ("apply.title", "证书新办", "New certificate"),
    ("apply.intro", "打*的项目为必填项，请如实填写。", "Fields marked * are required; fill them in truthfully."),
    ("apply.organisation", "单位名称", "Organisation"),
    ("apply.credit_code", "统一社会信用代码", "Unified social credit code"),
    ("apply.from_record", "以单位档案为准，不能修改", "From your enterprise's record; cannot be changed"),
    ("apply.handler_name", "经办人姓名", "Handler's name"),
    ("apply.id_number", "经办人身份证号", "Handler's ID card number"),
    ("apply.mobile", "经办人手机号", "Handler's mobile number"),
    ("apply.email", "电子邮箱", "Email"),
    ("apply.next", "下一步", "Next"),
    ("apply.fix", "请修改标出的项目", "Correct the marked fields"),
    ("apply.review", "订单审核", "Order review"),
    ("apply.review_intro", "请经办人审核填写信息，确认无误后点击“确认订单”，如信息有误，则点击“返回修改”。", "Check what was filled in: confirm the order if it is right, or go back and edit it."),
    ("apply.number", "申请编号", "Application number"),
    ("apply.amount", "金额（元）", "Amount (yuan)"),
    ("apply.stage", "当前进度", "Stage"),
    ("apply.confirm", "确认订单", "Confirm order"),
    ("apply.back", "返回修改", "Go back and edit"),
    ("apply.photos", "上传证件照片", "Upload the ID photos"),
    ("apply.photos_intro", "请上传经办人身份证的人像面和国徽面照片（JPG或PNG）。", "Upload both sides of the handler's ID card (JPEG or PNG)."),
    ("apply.photo.front", "人像面", "Photo side"),
    ("apply.photo.back", "国徽面", "Emblem side"),
    ("apply.photo.done", "已上传", "Uploaded"),
    ("apply.photo.missing", "未上传", "Not uploaded"),
    ("apply.photos_next", "两面照片上传后，下一步插入USB-Key确认申请。", "With both sides uploaded, the next step confirms the application with your USB-Key."),
    ("apply.submit", "确认申请", "Confirm the application"),
    ("apply.key.none", "请插入用于申请证书的USB-Key", "Insert the USB-Key to apply with"),
    ("apply.key.replace", "该USB-Key中已有证书。继续申请将在USB-Key中生成新的密钥，原证书将无法再使用。确定继续吗？", "This USB-Key already holds a certificate. Applying generates a new key pair on it and the old certificate stops working. Go ahead?"),
    ("apply.replace", "继续，替换原证书", "Go ahead and replace it"),
    ("apply.last_try.confirm", "确认，继续", "Confirm and go on"),
    ("apply.sms", "短信验证码签名确认", "Confirm with the SMS code"),
    ("apply.sms_sent", "验证码已发送至经办人手机", "A code was sent to the handler's mobile"),
    ("apply.sms_code", "短信验证码", "SMS code"),
    ("apply.sms.required", "请输入短信验证码", "Enter the SMS code"),
    ("apply.sms_resend", "重新获取验证码", "Send a new code"),
    ("apply.sandbox_sms", "测试环境不发送真实短信：", "The sandbox sends no real SMS:"),
    ("apply.pay", "证书支付", "Payment"),
    ("apply.pay.choose", "请选择支付方式", "Choose how to pay"),
    ("apply.pay.go", "去支付 ¥", "Pay ¥"),
    ("pay.wechat", "微信支付", "WeChat Pay"),
    ("pay.alipay", "支付宝", "Alipay"),
    ("apply.paid", "支付", "Paid"),
    ("apply.success", "数字证书申请成功", "Your certificate application is filed"),
    ("apply.success_text", "请等待工作人员审核证书材料，审核结果将通过电子邮件通知。", "Staff will now review the materials; the result comes by email."),
    ("apply.valid_until", "证书有效期至", "Certificate valid until"),
    ("apply.reject_reason", "未通过原因", "Reason for rejection"),
    ("apply.rejected", "数字证书申请未通过审核", "The application was not approved"),
    ("apply.issued", "审核通过，证书已签发", "Approved: the certificate is issued"),
    ("apply.again", "重新申请", "Apply again"),
    ("apply.install", "将证书写入USB-Key", "Write the certificate to the USB-Key"),
    ("apply.install_intro", "证书已签发。请插入申请时使用的USB-Key，输入USB-Key密码，将证书写入USB-Key。", "The certificate is issued. Insert the USB-Key the application was made with and enter its PIN to write the certificate to it."),
    ("apply.install_login", "使用CA数字证书登录", "Log in with the USB-Key"),
    ("applications.title", "申请状态", "My applications"),
    ("applications.caption", "您提交的数字证书申请及办理进度", "Your certificate applications and where each stands"),
    ("applications.created", "申请日期", "Filed on"),
    ("applications.none", "您还没有数字证书申请。", "You have no certificate applications yet."),
    ("receipt.title", "申请表回执", "Application receipt"),
    ("receipt.back", "返回申请", "Back to the application"),
    ("receipt.print", "打印回执", "Print the receipt"),
    ("receipt.note", "请妥善保管本回执，办理证书业务时出示。", "Keep this receipt; show it when you deal with your certificate."),
    ("staff.title", "证书申请审核", "Certificate application review"),
    ("staff.caption", "待处理的数字证书申请", "Certificate applications at this stage"),
    ("staff.empty", "没有该状态的申请。", "No applications at this stage."),
    ("staff.detail", "申请详情", "Application"),
    ("staff.key", "USB-Key证明（attestation）", "The key's attestation"),
    ("staff.key.none", "没有USB-Key证明信息", "No attestation on record"),
    ("staff.key.manufacturer", "证明机构", "Attested by"),
    ("staff.key.serial", "USB-Key序列号", "Key serial"),
    ("staff.key.firmware", "固件版本", "Firmware"),
    ("staff.decide", "审核", "Decision"),
    ("staff.approve", "审核通过并签发证书", "Approve and issue the certificate"),
    ("staff.reject", "审核不通过", "Reject"),
    ("staff.reason_required", "请填写未通过原因", "Give the reason for rejecting"),
    ("staff.cert", "已签发的证书", "Issued certificate"),
    ("staff.cert.subject", "证书主题", "Subject"),
    ("staff.cert.valid", "有效期", "Valid"),
    ("staff.cert.fingerprint", "SHA-256指纹", "SHA-256 fingerprint"),
    ("staff.cert.revoked", "已吊销", "Revoked"),
    ("staff.revoke_reason", "吊销原因", "Reason for revoking"),
    ("staff.revoke", "吊销证书", "Revoke the certificate"),
    ("sandbox.notice", "测试环境（sandbox）：本页代替真实的支付应用、手机和邮箱。", "Sandbox: this page stands in for the real payment app, phone and mailbox."),
    ("sandbox.pay.title", "模拟支付", "Simulated payment"),
    ("sandbox.pay.id", "支付单号", "Payment"),
    ("sandbox.pay.confirm", "确认支付", "Pay"),
    ("sandbox.paid", "支付成功", "Paid"),
    ("outbox.title", "测试发件箱", "Sandbox outbox"),
    ("outbox.to", "手机号或邮箱", "Mobile number or email"),
    ("outbox.show", "查看", "Show"),
    ("outbox.empty", "没有发给该收件人的消息。", "Nothing was sent to this recipient."),
    ("outbox.sms", "短信", "SMS"),
    ("outbox.email", "电子邮件", "Email"),
    ("help.title", "证书应用环境安装部署", "Installing the certificate application environment"),
    (
        "help.intro",
        "使用USB-Key的电脑上必须运行证书应用环境（ukey agent），否则业务系统无法识别USB-Key。",
        "A computer that uses a USB-Key must run the certificate application environment (ukey agent); without it the business system cannot see the key.",
    ),
    ("help.install", "安装", "Install"),
    (
        "help.install.text",
        "安装 ukey 后，把随附的 systemd 用户服务复制到 ~/.config/systemd/user/，然后启用它：",
        "With ukey installed, copy the systemd user unit it ships into ~/.config/systemd/user/, then enable it:",
    ),
    ("help.run", "或者直接运行", "Or run it by hand"),
    ("help.check", "检查", "Check"),
    (
        "help.check.text",
        "插入USB-Key后回到登录页，CA数字证书登录处的账号信息会显示USB-Key名称。",
        "Insert the USB-Key and go back to the login page: the account field of the CA login shows the key's name.",
    ),
    ("help.back", "返回登录", "Back to login"),
    ("error.title", "出错了", "Something went wrong"),
    ("error.not_found", "页面不存在", "This page does not exist"),
    ("error.back", "返回首页", "Back to the start page"),
];

/// The pages' words in one language.
#[derive(Clone, Copy, Debug)]
pub struct Text {
    pub lang: Lang,
}

impl Text {
    /// The text of `key`; the key itself if it has none (a unit test keeps that from happening).
    pub fn get<'a>(&self, key: &'a str) -> &'a str {
        match TEXTS.iter().find(|(k, _, _)| *k == key) {
            Some((_, zh, en)) => match self.lang {
                Lang::Zh => zh,
                Lang::En => en,
            },
            None => key,
        }
    }

    /// `keys` and their texts, for a page's script.
    pub fn texts(&self, keys: &[&str]) -> serde_json::Value {
        keys.iter()
            .map(|k| (k.to_string(), serde_json::Value::from(self.get(k))))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// `zh-CN` or `en`, for `<html lang>`.
    pub fn html_lang(&self) -> &'static str {
        match self.lang {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The language the switch goes to.
    pub fn other(&self) -> &'static str {
        match self.lang {
            Lang::Zh => "en",
            Lang::En => "zh-CN",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `t.get("...")` of the templates and every `text("...")` of the scripts has words
    /// in both languages.
    #[test]
    fn every_key_used_has_both_languages() {
        let dirs = [concat!(env!("CARGO_MANIFEST_DIR"), "/templates"), concat!(env!("CARGO_MANIFEST_DIR"), "/static")];
        let mut used = Vec::new();
        for dir in dirs {
            for entry in std::fs::read_dir(dir).unwrap() {
                let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                for marker in ["t.get(\"", "text(\""] {
                    let mut rest = text.as_str();
                    while let Some(i) = rest.find(marker) {
                        rest = &rest[i + marker.len()..];
                        let key: String = rest.chars().take_while(|c| *c != '"').collect();
                        used.push(key);
                    }
                }
            }
        }
        assert!(used.len() > 20, "the scan found the keys: {used:?}");
        for key in used.iter().filter(|k| !k.is_empty()) {
            assert!(TEXTS.iter().any(|(k, _, _)| k == key), "no text for {key:?}");
        }
        for (k, zh, en) in TEXTS {
            assert!(!zh.is_empty() && !en.is_empty(), "{k}");
            assert_eq!(TEXTS.iter().filter(|(x, _, _)| x == k).count(), 1, "{k} twice");
        }
    }
}
