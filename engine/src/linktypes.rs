//! Link-layer header type numbers and names: the port of `tlspcap.capture.linktypes`.

pub const NULL: u32 = 0;
pub const ETHERNET: u32 = 1;
pub const DLT_RAW_12: u32 = 12;
pub const DLT_RAW_14: u32 = 14;
pub const RAW: u32 = 101;
pub const LOOP: u32 = 108;
pub const LINUX_SLL: u32 = 113;
pub const ERF: u32 = 197;
pub const IPV4: u32 = 228;
pub const IPV6: u32 = 229;
pub const LINUX_SLL2: u32 = 276;

/// Link types the decoder reads (`SUPPORTED`).
pub fn supported(linktype: u32) -> bool {
    matches!(
        linktype,
        NULL | ETHERNET
            | DLT_RAW_12
            | DLT_RAW_14
            | RAW
            | LOOP
            | LINUX_SLL
            | ERF
            | IPV4
            | IPV6
            | LINUX_SLL2
    )
}

/// The LINKTYPE_ name without its prefix, or `"UNKNOWN"` (`linktype_name`).
pub fn linktype_name(linktype: u32) -> String {
    if (147..=162).contains(&linktype) {
        return format!("USER{}", linktype - 147);
    }
    match linktype {
        0 => "NULL",
        1 => "ETHERNET",
        3 => "AX25",
        6 => "IEEE802_5",
        7 => "ARCNET_BSD",
        8 => "SLIP",
        9 => "PPP",
        10 => "FDDI",
        12 => "RAW",
        14 => "RAW",
        50 => "PPP_HDLC",
        51 => "PPP_ETHER",
        100 => "ATM_RFC1483",
        101 => "RAW",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        107 => "FRELAY",
        108 => "LOOP",
        113 => "LINUX_SLL",
        117 => "PFLOG",
        119 => "IEEE802_11_PRISM",
        122 => "IP_OVER_FC",
        127 => "IEEE802_11_RADIOTAP",
        143 => "DOCSIS",
        163 => "IEEE802_11_AVS",
        187 => "BLUETOOTH_HCI_H4",
        189 => "USB_LINUX",
        192 => "PPI",
        195 => "IEEE802_15_4_WITHFCS",
        197 => "ERF",
        201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
        215 => "IEEE802_15_4_NONASK_PHY",
        220 => "USB_LINUX_MMAPPED",
        226 => "IPNET",
        228 => "IPV4",
        229 => "IPV6",
        230 => "IEEE802_15_4_NOFCS",
        231 => "DBUS",
        239 => "NFLOG",
        240 => "NETANALYZER",
        241 => "NETANALYZER_TRANSPARENT",
        243 => "MPEG_2_TS",
        249 => "USBPCAP",
        251 => "BLUETOOTH_LE_LL",
        252 => "WIRESHARK_UPPER_PDU",
        253 => "NETLINK",
        254 => "BLUETOOTH_LINUX_MONITOR",
        276 => "LINUX_SLL2",
        _ => "UNKNOWN",
    }
    .to_string()
}

/// `"105 (IEEE802_11)"` (`describe`).
pub fn describe(linktype: u32) -> String {
    format!("{} ({})", linktype, linktype_name(linktype))
}

/// The message used wherever a link type cannot be decoded (`unsupported_message`).
pub fn unsupported_message(linktype: u32) -> String {
    format!("unsupported link type {}", describe(linktype))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_in_python() {
        assert_eq!(
            unsupported_message(105),
            "unsupported link type 105 (IEEE802_11)"
        );
        assert_eq!(linktype_name(150), "USER3");
        assert_eq!(linktype_name(9999), "UNKNOWN");
        assert!(supported(276) && !supported(105));
    }
}
