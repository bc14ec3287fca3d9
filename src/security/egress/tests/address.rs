//! Address classes, and the IPv4 address inside IPv6 forms.

use crate::security::egress::{AddressClass, embedded_ipv4};
use std::net::IpAddr;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn addresses_fall_in_their_classes() {
    use AddressClass::*;
    let cases = [
        ("8.8.8.8", Global),
        ("140.82.112.3", Global),
        ("1.1.1.1", Global),
        ("100.63.255.255", Global),
        ("100.128.0.0", Global),
        ("172.32.0.1", Global),
        ("169.253.255.255", Global),
        ("223.255.255.255", Global),
        ("2606:4700:4700::1111", Global),
        ("2a00:1450:4001::200e", Global),
        ("127.0.0.1", Loopback),
        ("127.255.255.254", Loopback),
        ("::1", Loopback),
        ("10.0.0.1", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("192.168.1.1", Private),
        ("169.254.169.254", LinkLocal),
        ("169.254.0.1", LinkLocal),
        ("fe80::1", LinkLocal),
        ("100.64.0.1", SharedCgnat),
        ("100.127.255.254", SharedCgnat),
        ("fd00::1", UniqueLocal),
        ("fc00::1", UniqueLocal),
        ("fd12:3456:789a::1", UniqueLocal),
        ("224.0.0.1", Multicast),
        ("239.255.255.250", Multicast),
        ("ff02::1", Multicast),
        ("0.0.0.0", Unspecified),
        ("::", Unspecified),
        ("255.255.255.255", Broadcast),
        ("192.0.2.1", Documentation),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("2001:db8::1", Documentation),
        ("3fff::1", Documentation),
        ("0.1.2.3", Reserved),
        ("240.0.0.1", Reserved),
        ("255.255.255.254", Reserved),
        ("198.18.0.1", Reserved),
        ("192.0.0.8", Reserved),
        ("192.88.99.1", Reserved),
        ("100::1", Reserved),
        ("2001::1", Reserved),
        ("fec0::1", Reserved),
        ("4000::1", Reserved),
        ("::ffff:0:1:2", Reserved),
        ("64:ff9b:1::1", Reserved),
    ];
    for (address, class) in cases {
        assert_eq!(AddressClass::of(ip(address)), class, "{address}");
    }
}

#[test]
fn ipv6_forms_that_carry_an_ipv4_address_are_judged_as_it() {
    use AddressClass::*;
    let cases = [
        ("::ffff:127.0.0.1", "127.0.0.1", Loopback),
        ("::ffff:169.254.169.254", "169.254.169.254", LinkLocal),
        ("::ffff:10.1.2.3", "10.1.2.3", Private),
        ("::ffff:8.8.8.8", "8.8.8.8", Global),
        ("::ffff:0.0.0.0", "0.0.0.0", Unspecified),
        ("::127.0.0.1", "127.0.0.1", Loopback),
        ("::10.0.0.1", "10.0.0.1", Private),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254", LinkLocal),
        ("64:ff9b::808:808", "8.8.8.8", Global),
        ("2002:c0a8:0101::1", "192.168.1.1", Private),
        ("2002:7f00:1::", "127.0.0.1", Loopback),
    ];
    for (address, inner, class) in cases {
        let IpAddr::V6(v6) = ip(address) else {
            panic!("{address} is IPv6")
        };
        assert_eq!(embedded_ipv4(v6).map(IpAddr::V4), Some(ip(inner)), "{address}");
        assert_eq!(AddressClass::of(ip(address)), class, "{address}");
    }
    for address in ["::", "::1", "2001:db8::1", "fd00::1"] {
        let IpAddr::V6(v6) = ip(address) else {
            panic!("{address} is IPv6")
        };
        assert_eq!(embedded_ipv4(v6), None, "{address}");
    }
}

#[test]
fn every_class_has_words_and_only_some_can_be_opened() {
    use AddressClass::*;
    let all = [
        Global,
        Loopback,
        Private,
        LinkLocal,
        SharedCgnat,
        UniqueLocal,
        Multicast,
        Unspecified,
        Broadcast,
        Documentation,
        Reserved,
    ];
    for class in all {
        assert!(!class.name().is_empty());
        assert_eq!(
            class.can_be_allowed(),
            !matches!(class, Loopback | Unspecified | Broadcast | Multicast)
        );
    }
    assert!(LinkLocal.name().contains("169.254.169.254"));
    assert!(SharedCgnat.name().contains("100.64.0.0/10"));
}
