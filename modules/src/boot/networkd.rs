//! `networkd`: systemd-networkd `.network`, `.netdev` and `.link` files from typed sections,
//! followed by one `networkctl reload` per host.

use crate::boot_util::{self, FileNow, Want};
use async_trait::async_trait;
use indexmap::IndexMap;
use pbr_core::params::Presence;
use pbr_core::{Ctx, Deferred, Doc, Module, ModuleError, Op, Plan, ReadHost};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;

fn default_dir() -> String {
    "/etc/systemd/network".to_string()
}

/// One value: a string, a number, or a boolean (written `yes`/`no`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Val(pub String);

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(Val(if b { "yes" } else { "no" }.to_string())),
            Value::Number(n) => Ok(Val(n.to_string())),
            Value::String(s) if s.contains(['\n', '\r']) => {
                Err(serde::de::Error::custom("a networkd value must be one line"))
            }
            Value::String(s) => Ok(Val(s)),
            other => Err(serde::de::Error::custom(format!("expected a string, number or boolean, got {other}"))),
        }
    }
}

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JsonSchema for Val {
    fn schema_name() -> Cow<'static, str> {
        "NetworkdValue".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A value: string, number, or boolean (written yes/no)",
            "type": ["string", "number", "boolean"]
        })
    }
}

/// One value or a list; a list is written as the key repeated once per value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Vals(pub Vec<Val>);

impl<'de> Deserialize<'de> for Vals {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum L {
            Many(Vec<Val>),
            One(Val),
        }
        match L::deserialize(d)? {
            L::Many(v) => Ok(Vals(v)),
            L::One(v) => Ok(Vals(vec![v])),
        }
    }
}

impl JsonSchema for Vals {
    fn schema_name() -> Cow<'static, str> {
        "NetworkdValues".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A value or a list of values (the key is repeated once per value)",
            "anyOf": [
                {"type": ["string", "number", "boolean"]},
                {"type": "array", "items": {"type": ["string", "number", "boolean"]}}
            ]
        })
    }
}

/// A setting with a fixed set of words; `true`/`false` read as `yes`/`no`.
macro_rules! choice {
    ($name:ident, $what:literal, [$($w:literal),+]) => {
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                const WORDS: &[&str] = &[$($w),+];
                let s = match Value::deserialize(d)? {
                    Value::Bool(b) => if b { "yes" } else { "no" }.to_string(),
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                if WORDS.contains(&s.as_str()) {
                    Ok($name(s))
                } else {
                    Err(serde::de::Error::custom(format!(
                        "{} must be one of {}, got {s:?}", $what, WORDS.join(", ")
                    )))
                }
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "description": concat!($what, ": one of ", $($w, " "),+),
                    "anyOf": [{"type": "boolean"}, {"enum": [$($w),+]}]
                })
            }
        }
    };
}

choice!(DhcpMode, "DHCP", ["yes", "no", "ipv4", "ipv6"]);
choice!(KeepConfig, "KeepConfiguration", ["yes", "no", "static", "dhcp-on-stop", "dhcp"]);
choice!(LinkLocal, "LinkLocalAddressing", ["yes", "no", "ipv4", "ipv6", "fallback", "ipv4-fallback"]);

/// Declares a section struct whose fields are all optional and named as systemd spells them.
macro_rules! section {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $key:literal $field:ident : $ty:ty,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(rename = $key, default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )+
        }

        impl $name {
            /// The systemd key names of this section.
            pub const KEYS: &'static [&'static str] = &[$($key),+];
        }
    };
}

section!(
    /// `[Match]`: which links the file applies to.
    MatchSection {
        /// Interface names or globs (`eth0`, `en*`).
        "Name" name: Vals,
        /// Hardware addresses.
        "MACAddress" mac_address: Vals,
        /// Permanent hardware addresses.
        "PermanentMACAddress" permanent_mac_address: Vals,
        /// Persistent device paths (globs).
        "Path" path: Vals,
        /// Kernel driver names (`brcmfmac`).
        "Driver" driver: Vals,
        /// Device types (`ether`, `wlan`, `loopback`).
        "Type" type_: Vals,
        /// Netdev kinds (`bridge`, `vlan`).
        "Kind" kind: Vals,
        /// udev properties `KEY=value`.
        "Property" property: Vals,
        /// Names before renaming (`.link` files).
        "OriginalName" original_name: Vals,
        /// Host name condition.
        "Host" host: Val,
        /// Virtualization condition.
        "Virtualization" virtualization: Val,
        /// Kernel command line condition.
        "KernelCommandLine" kernel_command_line: Val,
        /// Kernel version condition.
        "KernelVersion" kernel_version: Val,
        /// Architecture condition.
        "Architecture" architecture: Val,
        /// Firmware condition.
        "Firmware" firmware: Val,
        /// Credential condition.
        "Credential" credential: Val,
        /// Wireless network names.
        "SSID" ssid: Vals,
        /// Wireless access point addresses.
        "BSSID" bssid: Vals,
        /// Wireless interface types (`station`, `ap`).
        "WLANInterfaceType" wlan_interface_type: Vals,
    }
);

section!(
    /// `[Network]` of a `.network` file.
    NetworkSection {
        /// Free text.
        "Description" description: Val,
        /// DHCP client: yes, no, ipv4, ipv6.
        "DHCP" dhcp: DhcpMode,
        /// Run a DHCP server on the link.
        "DHCPServer" dhcp_server: Val,
        /// Link-local addressing: yes, no, ipv4, ipv6, fallback, ipv4-fallback.
        "LinkLocalAddressing" link_local_addressing: LinkLocal,
        /// How the IPv6 link-local address is made.
        "IPv6LinkLocalAddressGenerationMode" ipv6_ll_mode: Val,
        /// Route everything through the link when it only has a link-local address.
        "IPv4LLRoute" ipv4_ll_route: Val,
        /// Add a default route on the device.
        "DefaultRouteOnDevice" default_route_on_device: Val,
        /// Accept IPv6 router advertisements.
        "IPv6AcceptRA" ipv6_accept_ra: Val,
        /// Send IPv6 router advertisements.
        "IPv6SendRA" ipv6_send_ra: Val,
        /// IPv6 privacy extensions.
        "IPv6PrivacyExtensions" ipv6_privacy_extensions: Val,
        /// LLMNR.
        "LLMNR" llmnr: Val,
        /// Multicast DNS.
        "MulticastDNS" multicast_dns: Val,
        /// DNS over TLS.
        "DNSOverTLS" dns_over_tls: Val,
        /// DNSSEC.
        "DNSSEC" dnssec: Val,
        /// LLDP reception.
        "LLDP" lldp: Val,
        /// LLDP emission.
        "EmitLLDP" emit_lldp: Val,
        /// Links whose carrier this link follows.
        "BindCarrier" bind_carrier: Vals,
        /// Static addresses with prefix length (`192.168.1.20/24`).
        "Address" address: Vals,
        /// Gateways.
        "Gateway" gateway: Vals,
        /// DNS servers.
        "DNS" dns: Vals,
        /// Search (or `~routing`) domains.
        "Domains" domains: Vals,
        /// NTP servers.
        "NTP" ntp: Vals,
        /// IP forwarding.
        "IPForward" ip_forward: Val,
        /// Masquerading.
        "IPMasquerade" ip_masquerade: Val,
        /// Keep addresses and routes set before networkd took the link (e.g. by the initramfs):
        /// yes, no, static, dhcp-on-stop, dhcp. `yes` for a root file system over the network.
        "KeepConfiguration" keep_configuration: KeepConfig,
        /// Configure the link without carrier.
        "ConfigureWithoutCarrier" configure_without_carrier: Val,
        /// Keep the configuration when the carrier is lost.
        "IgnoreCarrierLoss" ignore_carrier_loss: Val,
        /// Bond to join.
        "Bond" bond: Val,
        /// Bridge to join.
        "Bridge" bridge: Val,
        /// VLANs to create on the link.
        "VLAN" vlan: Vals,
        /// MACVLANs to create on the link.
        "MACVLAN" macvlan: Vals,
        /// VXLANs to create on the link.
        "VXLAN" vxlan: Vals,
        /// Tunnels to create on the link.
        "Tunnel" tunnel: Vals,
        /// VRF to join.
        "VRF" vrf: Val,
    }
);

section!(
    /// `[Link]` of a `.network` file (link settings) or of a `.link` file (udev naming and
    /// hardware settings); the keys of both are accepted.
    LinkSection {
        /// Free text (`.link`).
        "Description" description: Val,
        /// Hardware address to set.
        "MACAddress" mac_address: Val,
        /// MTU.
        "MTUBytes" mtu_bytes: Val,
        /// ARP on the link.
        "ARP" arp: Val,
        /// Multicast.
        "Multicast" multicast: Val,
        /// All multicast.
        "AllMulticast" all_multicast: Val,
        /// Promiscuous mode.
        "Promiscuous" promiscuous: Val,
        /// Leave the link alone.
        "Unmanaged" unmanaged: Val,
        /// Link group.
        "Group" group: Val,
        /// Whether (and at which operational state) the link is needed for "online".
        "RequiredForOnline" required_for_online: Val,
        /// Address family needed for "online".
        "RequiredFamilyForOnline" required_family_for_online: Val,
        /// up, always-up, down, always-down, manual, bound.
        "ActivationPolicy" activation_policy: Val,
        /// `.link`: how the hardware address is chosen.
        "MACAddressPolicy" mac_address_policy: Val,
        /// `.link`: naming policies, in order.
        "NamePolicy" name_policy: Vals,
        /// `.link`: the interface name.
        "Name" name: Val,
        /// `.link`: alternative naming policies.
        "AlternativeNamesPolicy" alternative_names_policy: Vals,
        /// `.link`: alternative names.
        "AlternativeName" alternative_name: Vals,
        /// `.link`: speed.
        "BitsPerSecond" bits_per_second: Val,
        /// `.link`: duplex.
        "Duplex" duplex: Val,
        /// `.link`: auto-negotiation.
        "AutoNegotiation" auto_negotiation: Val,
        /// `.link`: Wake-on-LAN.
        "WakeOnLan" wake_on_lan: Vals,
        /// `.link`: port type.
        "Port" port: Val,
        /// `.link`: transmit queue length.
        "TransmitQueueLength" transmit_queue_length: Val,
    }
);

section!(
    /// An `[Address]` section.
    AddressSection {
        /// The address with prefix length.
        "Address" address: Val,
        /// Point-to-point peer.
        "Peer" peer: Val,
        /// Broadcast address.
        "Broadcast" broadcast: Val,
        /// Label.
        "Label" label: Val,
        /// Preferred lifetime.
        "PreferredLifetime" preferred_lifetime: Val,
        /// Scope.
        "Scope" scope: Val,
        /// Metric of the prefix route.
        "RouteMetric" route_metric: Val,
        /// Mobile IPv6 home address.
        "HomeAddress" home_address: Val,
        /// Duplicate address detection.
        "DuplicateAddressDetection" duplicate_address_detection: Val,
        /// Add the prefix route.
        "AddPrefixRoute" add_prefix_route: Val,
    }
);

section!(
    /// A `[Route]` section.
    RouteSection {
        /// Gateway.
        "Gateway" gateway: Val,
        /// Gateway reachable without a route.
        "GatewayOnLink" gateway_on_link: Val,
        /// Destination prefix.
        "Destination" destination: Val,
        /// Source prefix.
        "Source" source: Val,
        /// Metric.
        "Metric" metric: Val,
        /// IPv6 route preference.
        "IPv6Preference" ipv6_preference: Val,
        /// Scope.
        "Scope" scope: Val,
        /// Preferred source address.
        "PreferredSource" preferred_source: Val,
        /// Routing table.
        "Table" table: Val,
        /// Protocol.
        "Protocol" protocol: Val,
        /// Route type (`unicast`, `blackhole`...).
        "Type" type_: Val,
        /// Initial congestion window.
        "InitialCongestionWindow" initial_congestion_window: Val,
        /// MTU of the route.
        "MTUBytes" mtu_bytes: Val,
        /// TCP quick ack.
        "QuickAck" quick_ack: Val,
    }
);

section!(
    /// `[DHCPv4]`: DHCP client settings.
    Dhcpv4Section {
        /// Client identifier (`mac`, `duid`).
        "ClientIdentifier" client_identifier: Val,
        /// Use the DNS servers received.
        "UseDNS" use_dns: Val,
        /// Use the NTP servers received.
        "UseNTP" use_ntp: Val,
        /// Use the host name received.
        "UseHostname" use_hostname: Val,
        /// Use the domains received.
        "UseDomains" use_domains: Val,
        /// Use the routes received.
        "UseRoutes" use_routes: Val,
        /// Use the gateway received.
        "UseGateway" use_gateway: Val,
        /// Use the MTU received.
        "UseMTU" use_mtu: Val,
        /// Use the time zone received.
        "UseTimezone" use_timezone: Val,
        /// Send the host name.
        "SendHostname" send_hostname: Val,
        /// Host name to send.
        "Hostname" hostname: Val,
        /// Metric of DHCP routes.
        "RouteMetric" route_metric: Val,
        /// Table of DHCP routes.
        "RouteTable" route_table: Val,
        /// Vendor class identifier.
        "VendorClassIdentifier" vendor_class_identifier: Val,
        /// Ask for broadcast replies.
        "RequestBroadcast" request_broadcast: Val,
        /// Send as little as possible.
        "Anonymize" anonymize: Val,
        /// DUID type.
        "DUIDType" duid_type: Val,
        /// DUID raw data.
        "DUIDRawData" duid_raw_data: Val,
        /// IAID.
        "IAID" iaid: Val,
        /// Attempts before giving up.
        "MaxAttempts" max_attempts: Val,
        /// Release the lease on stop.
        "SendRelease" send_release: Val,
        /// Address label.
        "Label" label: Val,
        /// Address to ask for.
        "RequestAddress" request_address: Val,
    }
);

section!(
    /// `[NetDev]` of a `.netdev` file.
    NetDevSection {
        /// Free text.
        "Description" description: Val,
        /// Name of the device to create.
        "Name" name: Val,
        /// Kind (`bridge`, `vlan`, `bond`, `wireguard`...).
        "Kind" kind: Val,
        /// MTU.
        "MTUBytes" mtu_bytes: Val,
        /// Hardware address.
        "MACAddress" mac_address: Val,
    }
);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkdParams {
    /// File name, ending in `.network`, `.netdev` or `.link` (`10-eth0.network`).
    pub name: String,
    /// Directory of the file.
    #[serde(default = "default_dir")]
    pub dir: String,
    /// `present` writes the file; `absent` removes it.
    #[serde(default)]
    pub state: Presence,
    /// `[Match]` section.
    #[serde(default, rename = "match")]
    pub match_: Option<MatchSection>,
    /// `[Link]` section (`.network` and `.link`).
    #[serde(default)]
    pub link: Option<LinkSection>,
    /// `[Network]` section (`.network`).
    #[serde(default)]
    pub network: Option<NetworkSection>,
    /// `[Address]` sections (`.network`).
    #[serde(default)]
    pub address: Vec<AddressSection>,
    /// `[Route]` sections (`.network`).
    #[serde(default)]
    pub route: Vec<RouteSection>,
    /// `[DHCPv4]` section (`.network`).
    #[serde(default)]
    pub dhcpv4: Option<Dhcpv4Section>,
    /// `[NetDev]` section (`.netdev`).
    #[serde(default)]
    pub netdev: Option<NetDevSection>,
    /// Anything else: section name → key → value (or list). Keys for a section written above
    /// (`Network`, `Match`...) are added to it; other sections follow, in the order given.
    #[serde(default)]
    pub extra: IndexMap<String, IndexMap<String, Vals>>,
    /// Run `networkctl reload` (once per host, at the end of the run) after a change. Turn it off
    /// for a root that is not running (an image, a chroot).
    #[serde(default = "yes", deserialize_with = "pbr_core::params::bool_lenient")]
    pub reload: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Network,
    NetDev,
    Link,
}

fn kind_of(name: &str) -> Option<Kind> {
    if name.ends_with(".network") {
        Some(Kind::Network)
    } else if name.ends_with(".netdev") {
        Some(Kind::NetDev)
    } else if name.ends_with(".link") {
        Some(Kind::Link)
    } else {
        None
    }
}

type Section = (String, Vec<(String, String)>);

fn to_pairs<T: Serialize>(s: &T) -> Vec<(String, String)> {
    let mut out = vec![];
    if let Ok(Value::Object(m)) = serde_json::to_value(s) {
        for (k, v) in m {
            match v {
                Value::Array(a) => {
                    out.extend(a.into_iter().filter_map(|x| x.as_str().map(|s| (k.clone(), s.to_string()))))
                }
                Value::String(s) => out.push((k, s)),
                other => out.push((k, other.to_string())),
            }
        }
    }
    out
}

/// The sections of the file, in canonical order.
pub fn sections(p: &NetworkdParams) -> Vec<Section> {
    let mut out: Vec<Section> = vec![];
    let mut push = |name: &str, pairs: Vec<(String, String)>, always: bool| {
        if always || !pairs.is_empty() {
            out.push((name.to_string(), pairs));
        }
    };
    if let Some(m) = &p.match_ {
        push("Match", to_pairs(m), true);
    }
    if let Some(l) = &p.link {
        push("Link", to_pairs(l), false);
    }
    if let Some(n) = &p.netdev {
        push("NetDev", to_pairs(n), false);
    }
    if let Some(n) = &p.network {
        push("Network", to_pairs(n), false);
    }
    for a in &p.address {
        push("Address", to_pairs(a), false);
    }
    for r in &p.route {
        push("Route", to_pairs(r), false);
    }
    if let Some(d) = &p.dhcpv4 {
        push("DHCPv4", to_pairs(d), false);
    }
    for (sec, keys) in &p.extra {
        let pairs: Vec<(String, String)> =
            keys.iter().flat_map(|(k, vs)| vs.0.iter().map(move |v| (k.clone(), v.0.clone()))).collect();
        let single = matches!(sec.as_str(), "Match" | "Link" | "NetDev" | "Network" | "DHCPv4");
        match out.iter_mut().find(|(n, _)| n == sec).filter(|_| single) {
            Some((_, existing)) => existing.extend(pairs),
            None => out.push((sec.clone(), pairs)),
        }
    }
    out
}

/// The file's text.
pub fn render(p: &NetworkdParams) -> String {
    let mut s = String::from("# Managed by pbr (networkd module).\n");
    for (i, (name, pairs)) in sections(p).iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&format!("[{name}]\n"));
        for (k, v) in pairs {
            s.push_str(&format!("{k}={v}\n"));
        }
    }
    s
}

/// Read a unit file back: sections in order with their `Key=value` pairs (comments and blank
/// lines skipped). Errors on lines that are neither.
pub fn parse_unit(text: &str) -> Result<Vec<Section>, String> {
    let mut out: Vec<Section> = vec![];
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            out.push((name.to_string(), vec![]));
            continue;
        }
        let (k, v) = l.split_once('=').ok_or_else(|| format!("line {}: not `Key=value`: {l}", i + 1))?;
        let sec = out.last_mut().ok_or_else(|| format!("line {}: key outside a section", i + 1))?;
        sec.1.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

fn ident_ok(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[derive(Debug, Clone)]
pub struct NetworkdState {
    pub file: FileNow,
    pub want: Want,
}

pub struct Networkd;

impl Networkd {
    fn path(p: &NetworkdParams) -> String {
        boot_util::join(&p.dir, &p.name)
    }
}

#[async_trait]
impl Module for Networkd {
    type Params = NetworkdParams;
    type State = NetworkdState;
    const NAME: &'static str = "networkd";
    const ALIASES: &'static [&'static str] = &["systemd_network"];

    fn doc(&self) -> Doc {
        Doc {
            description: "Write a systemd-networkd `.network`, `.netdev` or `.link` file from typed sections \
                          (`match`, `link`, `network`, `address`, `route`, `dhcpv4`, `netdev`; keys spelled as \
                          systemd spells them, so a misspelt key is a params error caught by lint) plus `extra` \
                          for any other section or key. The file is rendered canonically (fixed section order, \
                          one `Key=value` per line, lists as repeated keys), mode 0644. A change asks for one \
                          `networkctl reload` per host at the end of the run, never a restart, so a link \
                          configured by the initramfs keeps its address while networkd takes it over (with \
                          `KeepConfiguration: yes`).",
            examples: r#"- name: Wired link of a Pi whose root is on iSCSI
  networkd:
    name: 10-eth0.network
    match:
      Name: eth0
    network:
      DHCP: ipv4
      KeepConfiguration: yes
      LinkLocalAddressing: no
    dhcpv4:
      UseHostname: false

- name: Static address with an extra route
  networkd:
    name: 20-wlan0.network
    match:
      Name: wlan0
    network:
      Address: [192.168.1.20/24]
      Gateway: 192.168.1.1
      DNS: [192.168.1.1, 9.9.9.9]
      KeepConfiguration: static
    route:
      - Destination: 10.0.0.0/8
        Gateway: 192.168.1.254
    extra:
      Network:
        DHCPPrefixDelegation: "no"

- name: A bridge
  networkd:
    name: 30-br0.netdev
    netdev:
      Name: br0
      Kind: bridge
"#,
        }
    }

    fn validate(&self, p: &NetworkdParams) -> Result<(), String> {
        boot_util::check_file_name("name", &p.name)?;
        let kind =
            kind_of(&p.name).ok_or_else(|| format!("name {:?} must end in .network, .netdev or .link", p.name))?;
        let present = |b: bool, what: &str| if b { Some(what.to_string()) } else { None };
        let wrong: Vec<String> = match kind {
            Kind::Network => vec![present(p.netdev.is_some(), "netdev")],
            Kind::NetDev => vec![
                present(p.link.is_some(), "link"),
                present(p.network.is_some(), "network"),
                present(!p.address.is_empty(), "address"),
                present(!p.route.is_empty(), "route"),
                present(p.dhcpv4.is_some(), "dhcpv4"),
            ],
            Kind::Link => vec![
                present(p.netdev.is_some(), "netdev"),
                present(p.network.is_some(), "network"),
                present(!p.address.is_empty(), "address"),
                present(!p.route.is_empty(), "route"),
                present(p.dhcpv4.is_some(), "dhcpv4"),
            ],
        }
        .into_iter()
        .flatten()
        .collect();
        if !wrong.is_empty() {
            return Err(format!("{} cannot have {}", p.name, wrong.join(", ")));
        }
        for (sec, keys) in &p.extra {
            if !ident_ok(sec) {
                return Err(format!("extra: {sec:?} is not a section name"));
            }
            let typed: &[&str] = match sec.as_str() {
                "Match" if p.match_.is_some() => MatchSection::KEYS,
                "Link" if p.link.is_some() => LinkSection::KEYS,
                "Network" if p.network.is_some() => NetworkSection::KEYS,
                "DHCPv4" if p.dhcpv4.is_some() => Dhcpv4Section::KEYS,
                "NetDev" if p.netdev.is_some() => NetDevSection::KEYS,
                _ => &[],
            };
            for k in keys.keys() {
                if !ident_ok(k) {
                    return Err(format!("extra.{sec}: {k:?} is not a key name"));
                }
                if typed.contains(&k.as_str()) {
                    return Err(format!("extra.{sec}.{k}: set it in the typed section instead"));
                }
            }
        }
        if p.state == Presence::Present && sections(p).is_empty() {
            return Err(format!("{} would have no sections", p.name));
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &NetworkdParams, host: &ReadHost) -> Result<NetworkdState, ModuleError> {
        let file = boot_util::probe(host, &Self::path(p)).await?;
        let want = match p.state {
            Presence::Present => Want::Present { content: render(p), mode: 0o644 },
            Presence::Absent => Want::Absent,
        };
        Ok(NetworkdState { file, want })
    }

    fn plan(&self, p: &NetworkdParams, st: &NetworkdState) -> Result<Plan, ModuleError> {
        let changes = boot_util::file_changes(&st.file, &st.want, None);
        let mut ops = boot_util::file_ops(&st.file, &st.want);
        if p.reload && boot_util::content_differs(&st.file, &st.want) {
            ops.push(Op::Defer(Deferred {
                key: "networkd-reload".into(),
                description: "reload systemd-networkd".into(),
                script: "networkctl reload".into(),
            }));
        }
        Ok(Plan { changes, ops })
    }

    fn data(&self, p: &NetworkdParams, _st: &NetworkdState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("path".into(), Value::String(Self::path(p)));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_round_trips() {
        let p: NetworkdParams = serde_json::from_value(serde_json::json!({
            "name": "10-eth0.network",
            "match": {"Name": "eth0"},
            "network": {"DHCP": true, "Address": ["10.0.0.2/24", "10.0.0.3/24"], "KeepConfiguration": "yes"},
            "route": [{"Gateway": "10.0.0.1"}, {"Destination": "10.1.0.0/16", "Metric": 20}],
            "extra": {"Network": {"IPv6PrivacyExtensions": true}, "DHCPv6": {"UseDNS": false}}
        }))
        .unwrap();
        let text = render(&p);
        assert!(text.contains("[Network]\nDHCP=yes\nAddress=10.0.0.2/24\nAddress=10.0.0.3/24\n"));
        assert_eq!(parse_unit(&text).unwrap(), sections(&p));
        let bad = serde_json::from_value::<NetworkdParams>(serde_json::json!({
            "name": "x.network", "network": {"DHCp": "yes"}
        }));
        assert!(bad.is_err());
        let bad = serde_json::from_value::<NetworkdParams>(serde_json::json!({
            "name": "x.network", "network": {"KeepConfiguration": "maybe"}
        }));
        assert!(bad.is_err());
    }
}
