//! The SM2 key's definitions shared by the card and the host (GM/T 0016/0017, as
//! ../shared/GM-NOTES.md reconstructs them). So far: the forms an SM2 signature takes between
//! the card, the SKF interface and the caller ([`signature`]). The card application's APDU set
//! comes with the SM2 key itself.

pub mod signature;
