//! Columns that hold one of a few texts (states, roles) as Rust enums: a
//! row carries `router::State::Running`, not the string `"Running"`. The
//! enum round-trips to exactly the text the database holds (and CloudStack
//! shows), is checked when a row is read (an unknown text is a corrupt
//! row, not a silent mismatch), and still compares equal to its text so
//! code and tests can name either.
//!
//! Columns that hold a UUID, an IPv4 address or a CIDR are read through
//! [`Stored`] into `uuid::Uuid`, `Ipv4Addr` and `ipnet::Ipv4Net`: parsed
//! once, here, so no caller parses or compares their text.

use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Type};
use uuid::Uuid;

/// Declares a text-valued column enum: `pub enum Name { Variant = "Text", ... }`
/// with `as_str`, `Display`, `FromStr`, `TryFrom<String>` (for sqlx's
/// `#[sqlx(try_from = "String")]`), serde as its text, and `==` with `&str`.
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text the database holds.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::store::text::UnknownText;
            fn from_str(text: &str) -> ::std::result::Result<Self, $crate::store::text::UnknownText> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::store::text::UnknownText {
                        column: stringify!($name),
                        text: other.to_string(),
                    }),
                }
            }
        }

        impl ::std::convert::TryFrom<String> for $name {
            type Error = $crate::store::text::UnknownText;
            fn try_from(text: String) -> ::std::result::Result<Self, $crate::store::text::UnknownText> {
                text.parse()
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.as_str()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_string()
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let text = <String as ::serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// A column held a text its enum does not know: the row is corrupt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {column} value {text:?} in the database")]
pub struct UnknownText {
    pub column: &'static str,
    pub text: String,
}

/// A text column as the database hands it over, before the store parses it
/// into its Rust type (`#[sqlx(try_from = "Stored")]` on a [`Uuid`],
/// [`Ipv4Addr`] or [`Ipv4Net`] field): the text is parsed once, when the row
/// is read, and a text that does not parse fails the read naming the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored(pub String);

/// A nullable [`Stored`] column (`#[sqlx(try_from = "StoredOpt")]` on an
/// `Option<..>` field): NULL reads as `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOpt(pub Option<String>);

impl<DB: Database> Type<DB> for Stored
where
    String: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for Stored
where
    String: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Stored(<String as Decode<'r, DB>>::decode(value)?))
    }
}

impl<DB: Database> Type<DB> for StoredOpt
where
    String: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for StoredOpt
where
    String: Decode<'r, DB> + Type<DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(StoredOpt(<Option<String> as Decode<'r, DB>>::decode(
            value,
        )?))
    }
}

/// A stored text that is not what its column holds: the row is corrupt.
/// sqlx wraps it in an error naming the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored text {text:?} is not {kind}")]
pub struct Unparsable {
    /// What the column holds ("a UUID", "an IPv4 address" ...).
    pub kind: &'static str,
    /// The text found.
    pub text: String,
}

/// A type stored as its text form in a [`Stored`] column.
trait StoredText: FromStr {
    /// What the column holds, for [`Unparsable`] ("a UUID" ...).
    const KIND: &'static str;

    fn parse_stored(text: String) -> Result<Self, Unparsable> {
        text.parse().map_err(|_| Unparsable {
            kind: Self::KIND,
            text,
        })
    }
}

impl StoredText for Uuid {
    const KIND: &'static str = "a UUID";
}

impl StoredText for Ipv4Addr {
    const KIND: &'static str = "an IPv4 address";
}

impl StoredText for Ipv4Net {
    const KIND: &'static str = "an IPv4 CIDR";
}

impl TryFrom<Stored> for Uuid {
    type Error = Unparsable;
    fn try_from(stored: Stored) -> Result<Self, Unparsable> {
        Self::parse_stored(stored.0)
    }
}

impl TryFrom<Stored> for Ipv4Addr {
    type Error = Unparsable;
    fn try_from(stored: Stored) -> Result<Self, Unparsable> {
        Self::parse_stored(stored.0)
    }
}

impl TryFrom<Stored> for Ipv4Net {
    type Error = Unparsable;
    fn try_from(stored: Stored) -> Result<Self, Unparsable> {
        Self::parse_stored(stored.0)
    }
}

impl<T: StoredText> TryFrom<StoredOpt> for Option<T> {
    type Error = Unparsable;
    fn try_from(stored: StoredOpt) -> Result<Self, Unparsable> {
        stored.0.map(T::parse_stored).transpose()
    }
}

#[cfg(test)]
mod tests {
    crate::text_enum! {
        /// A test column.
        pub enum Light {
            Red = "Red",
            Green = "Green",
        }
    }

    #[test]
    fn every_value_round_trips_to_its_text() {
        for light in Light::ALL {
            assert_eq!(light.as_str().parse::<Light>(), Ok(*light));
            assert_eq!(Light::try_from(light.to_string()), Ok(*light));
            let json = serde_json::to_value(light).unwrap();
            assert_eq!(json, serde_json::json!(light.as_str()));
            assert_eq!(serde_json::from_value::<Light>(json).unwrap(), *light);
        }
        assert!(Light::Red == "Red" && Light::Green != "Red");
    }

    #[test]
    fn an_unknown_text_is_an_error_naming_the_column() {
        let e = "Blue".parse::<Light>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown Light value \"Blue\" in the database"
        );
        assert!(serde_json::from_value::<Light>(serde_json::json!("red")).is_err());
    }

    #[test]
    fn stored_texts_parse_into_their_types_and_print_back_the_same() {
        use super::{Stored, StoredOpt};
        let text = "6b1e9e5f-1f0e-4d3c-9a55-2f2f7b1a0c11";
        let id = uuid::Uuid::try_from(Stored(text.into())).unwrap();
        assert_eq!(id.to_string(), text);
        let ip = std::net::Ipv4Addr::try_from(Stored("10.1.2.3".into())).unwrap();
        assert_eq!(ip.to_string(), "10.1.2.3");
        let net = ipnet::Ipv4Net::try_from(Stored("10.1.0.0/16".into())).unwrap();
        assert_eq!(net.to_string(), "10.1.0.0/16");
        assert_eq!(Option::<uuid::Uuid>::try_from(StoredOpt(None)), Ok(None));
        assert_eq!(
            Option::<std::net::Ipv4Addr>::try_from(StoredOpt(Some("10.0.0.1".into()))),
            Ok(Some(std::net::Ipv4Addr::new(10, 0, 0, 1)))
        );
    }

    #[test]
    fn a_stored_text_that_does_not_parse_says_what_it_should_be() {
        use super::Stored;
        let e = uuid::Uuid::try_from(Stored("v-1".into())).unwrap_err();
        assert_eq!(e.to_string(), "stored text \"v-1\" is not a UUID");
        let e = std::net::Ipv4Addr::try_from(Stored("10.0.0".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "stored text \"10.0.0\" is not an IPv4 address"
        );
        let e = ipnet::Ipv4Net::try_from(Stored("10.0.0.0".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "stored text \"10.0.0.0\" is not an IPv4 CIDR"
        );
    }

    /// Every value of a column enum reads back from the text it writes.
    fn round_trips<T>(all: &[T])
    where
        T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr + std::fmt::Display,
        <T as std::str::FromStr>::Err: std::fmt::Debug,
    {
        for v in all {
            assert_eq!(v.to_string().parse::<T>().unwrap(), *v);
        }
    }

    #[test]
    fn the_state_and_kind_columns_round_trip_to_their_texts() {
        use crate::store::{account, acl, gateway, offering, rule, vlan};
        round_trips(rule::State::ALL);
        round_trips(rule::Purpose::ALL);
        round_trips(acl::ItemState::ALL);
        round_trips(gateway::GatewayState::ALL);
        round_trips(gateway::RouteState::ALL);
        round_trips(offering::State::ALL);
        round_trips(vlan::IpState::ALL);
        round_trips(account::State::ALL);
        // The texts are the ones the database held as constants before.
        assert_eq!(account::STATE_ENABLED.as_str(), "enabled");
        assert_eq!(rule::PURPOSE_LOAD_BALANCING.as_str(), "LoadBalancing");
        assert_eq!(vlan::IP_RELEASING.as_str(), "Releasing");
        let e = "Gone".parse::<gateway::RouteState>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown RouteState value \"Gone\" in the database"
        );
    }
}
