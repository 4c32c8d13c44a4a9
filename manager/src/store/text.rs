//! Columns that hold one of a few texts (states, roles) as Rust enums: a
//! row carries `router::State::Running`, not the string `"Running"`. The
//! enum round-trips to exactly the text the database holds (and CloudStack
//! shows), is checked when a row is read (an unknown text is a corrupt
//! row, not a silent mismatch), and still compares equal to its text so
//! code and tests can name either.

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
}
