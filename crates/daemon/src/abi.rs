//! Calls and views by function name or signature with JSON arguments, encoded and decoded with the
//! machine's ABI (from its artifact).
//!
//! JSON values: `bool` as true/false; integers as JSON numbers or decimal (or `0x` hex) strings, and
//! in results as numbers up to 48 bits and decimal strings beyond (what a JavaScript number holds
//! exactly; viem types those as `number` and `bigint`); addresses, bytes and fixed bytes as `0x`
//! hex strings (addresses checksummed in results); strings as strings; arrays as arrays; tuples as
//! arrays, or in results as objects when every component is named. A function with several
//! results returns an array; with one, that value; with none, `null`.

use alloy_dyn_abi::{DynSolType, DynSolValue, FunctionExt as _, JsonAbiExt as _, Specifier as _};
use alloy_json_abi::{Function, JsonAbi, Param};
use entente_types::Bytes;
use serde_json::Value;

/// Why a call could not be encoded or a result decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AbiError {
    /// The artifact has no usable ABI.
    #[error("the artifact has no ABI: {0}")]
    NoAbi(String),
    /// No function of that name or signature.
    #[error("the machine has no function {name:?} (it has: {})", available.join(", "))]
    UnknownFunction {
        /// What was asked for.
        name: String,
        /// The machine's functions' signatures.
        available: Vec<String>,
    },
    /// Several functions have that name: give the signature.
    #[error("{name:?} names several functions, give one signature: {}", candidates.join(", "))]
    Ambiguous {
        /// What was asked for.
        name: String,
        /// The candidates' signatures.
        candidates: Vec<String>,
    },
    /// Not as many arguments as the function takes.
    #[error("{function} takes {expected} arguments, got {got}")]
    ArgumentCount {
        /// The function's signature.
        function: String,
        /// What it takes.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// An argument does not fit its type.
    #[error("argument {index} ({name}) of {function} is not a {ty}: {value}")]
    BadArgument {
        /// The function's signature.
        function: String,
        /// Position.
        index: usize,
        /// The parameter's name.
        name: String,
        /// Its Solidity type.
        ty: String,
        /// The value given.
        value: String,
    },
    /// The machine's answer does not decode as the function's outputs.
    #[error("the result of {function} does not decode: {reason}")]
    BadResult {
        /// The function's signature.
        function: String,
        /// Why.
        reason: String,
    },
}

/// A machine's ABI.
#[derive(Debug, Clone)]
pub struct MachineAbi {
    abi: JsonAbi,
}

impl MachineAbi {
    /// From an artifact `{"abi": [...], ...}` (or a bare ABI array).
    pub fn from_artifact(json: &str) -> Result<Self, AbiError> {
        let value: Value = serde_json::from_str(json).map_err(|e| AbiError::NoAbi(e.to_string()))?;
        let abi = match value {
            Value::Object(mut o) => o
                .remove("abi")
                .ok_or_else(|| AbiError::NoAbi("no \"abi\" field".into()))?,
            v @ Value::Array(_) => v,
            _ => {
                return Err(AbiError::NoAbi(
                    "neither an artifact object nor an ABI array".into(),
                ));
            }
        };
        let abi: JsonAbi = serde_json::from_value(abi).map_err(|e| AbiError::NoAbi(e.to_string()))?;
        Ok(Self { abi })
    }

    /// The ABI.
    pub fn json_abi(&self) -> &JsonAbi {
        &self.abi
    }

    /// The function named `name` (unique) or with signature `name` (`play(uint8)`).
    pub fn function(&self, name: &str) -> Result<&Function, AbiError> {
        let name = name.trim();
        let all = || self.abi.functions().map(|f| f.signature()).collect::<Vec<_>>();
        if name.contains('(') {
            let wanted: String = name.chars().filter(|c| !c.is_whitespace()).collect();
            return self
                .abi
                .functions()
                .find(|f| f.signature() == wanted)
                .ok_or_else(|| AbiError::UnknownFunction {
                    name: name.into(),
                    available: all(),
                });
        }
        let found: Vec<&Function> = self
            .abi
            .function(name)
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(AbiError::UnknownFunction {
                name: name.into(),
                available: all(),
            }),
            many => Err(AbiError::Ambiguous {
                name: name.into(),
                candidates: many.iter().map(|f| f.signature()).collect(),
            }),
        }
    }

    /// The calldata of `function` with JSON `args`.
    pub fn encode(&self, function: &Function, args: &[Value]) -> Result<Bytes, AbiError> {
        if args.len() != function.inputs.len() {
            return Err(AbiError::ArgumentCount {
                function: function.signature(),
                expected: function.inputs.len(),
                got: args.len(),
            });
        }
        let mut values = Vec::with_capacity(args.len());
        for (index, (param, arg)) in function.inputs.iter().zip(args).enumerate() {
            let bad = || AbiError::BadArgument {
                function: function.signature(),
                index,
                name: param.name.clone(),
                ty: param.selector_type().into_owned(),
                value: arg.to_string(),
            };
            let ty: DynSolType = param.resolve().map_err(|_| bad())?;
            values.push(ty.coerce_json(arg).map_err(|_| bad())?);
        }
        function
            .abi_encode_input(&values)
            .map(Bytes::from)
            .map_err(|e| AbiError::BadResult {
                function: function.signature(),
                reason: e.to_string(),
            })
    }

    /// The JSON of `function`'s result `data`.
    pub fn decode(&self, function: &Function, data: &[u8]) -> Result<Value, AbiError> {
        let values = function
            .abi_decode_output(data)
            .map_err(|e| AbiError::BadResult {
                function: function.signature(),
                reason: e.to_string(),
            })?;
        let mut out: Vec<Value> = values
            .iter()
            .zip(&function.outputs)
            .map(|(v, p)| to_json(v, p))
            .collect();
        Ok(match out.len() {
            0 => Value::Null,
            1 => out.remove(0),
            _ => Value::Array(out),
        })
    }
}

fn element_param(p: &Param) -> Param {
    let ty = p.ty.rfind('[').map_or(p.ty.as_str(), |i| &p.ty[..i]).to_string();
    Param {
        ty,
        name: String::new(),
        components: p.components.clone(),
        internal_type: None,
    }
}

/// A value as JSON, `p` giving the names of tuple components.
fn to_json(v: &DynSolValue, p: &Param) -> Value {
    const EXACT_BITS: usize = 48;
    match v {
        DynSolValue::Bool(b) => Value::Bool(*b),
        DynSolValue::Int(i, bits) => {
            if *bits <= EXACT_BITS {
                i.as_i64().into()
            } else {
                Value::String(i.to_dec_string())
            }
        }
        DynSolValue::Uint(u, bits) => {
            if *bits <= EXACT_BITS {
                Value::from(u.to::<u64>())
            } else {
                Value::String(u.to_string())
            }
        }
        DynSolValue::Address(a) => Value::String(a.to_checksum(None)),
        DynSolValue::Function(f) => Value::String(f.to_string()),
        DynSolValue::FixedBytes(w, n) => Value::String(format!("0x{}", hex::encode(&w[..*n]))),
        DynSolValue::Bytes(b) => Value::String(format!("0x{}", hex::encode(b))),
        DynSolValue::String(s) => Value::String(s.clone()),
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) => {
            let e = element_param(p);
            Value::Array(items.iter().map(|x| to_json(x, &e)).collect())
        }
        DynSolValue::CustomStruct {
            prop_names, tuple, ..
        } => Value::Object(
            prop_names
                .iter()
                .zip(tuple)
                .map(|(n, x)| (n.clone(), to_json(x, &element_param(p))))
                .collect(),
        ),
        DynSolValue::Tuple(items) => {
            let named = !p.components.is_empty()
                && p.components.len() == items.len()
                && p.components.iter().all(|c| !c.name.is_empty());
            if named {
                Value::Object(
                    items
                        .iter()
                        .zip(&p.components)
                        .map(|(x, c)| (c.name.clone(), to_json(x, c)))
                        .collect(),
                )
            } else {
                let fallback = Param {
                    ty: String::new(),
                    name: String::new(),
                    components: Vec::new(),
                    internal_type: None,
                };
                Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| to_json(x, p.components.get(i).unwrap_or(&fallback)))
                        .collect(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn ttt() -> MachineAbi {
        MachineAbi::from_artifact(entente_contracts::artifacts::TIC_TAC_TOE).unwrap()
    }

    #[test]
    fn a_move_is_encoded_by_name_or_signature_and_bad_ones_say_why() {
        let abi = ttt();
        let play = abi.function("play").unwrap();
        assert_eq!(abi.function("play(uint8)").unwrap().signature(), play.signature());
        let data = abi.encode(play, &[json!(4)]).unwrap();
        assert_eq!(&data[..4], play.selector().as_slice());
        assert_eq!(data, abi.encode(play, &[json!("4")]).unwrap());
        assert!(matches!(
            abi.function("fly"),
            Err(AbiError::UnknownFunction { .. })
        ));
        assert!(matches!(
            abi.encode(play, &[]),
            Err(AbiError::ArgumentCount {
                expected: 1,
                got: 0,
                ..
            })
        ));
        assert!(matches!(
            abi.encode(play, &[json!(300)]),
            Err(AbiError::BadArgument { index: 0, .. })
        ));
        assert!(matches!(
            abi.encode(play, &[json!("four")]),
            Err(AbiError::BadArgument { .. })
        ));
    }

    #[test]
    fn results_decode_to_json_with_named_components() {
        let abi = ttt();
        let f = abi.function("initialState").unwrap();
        let x = "0x00000000000000000000000000000000000000A1";
        let data = abi
            .encode(
                f,
                &[
                    json!(x),
                    json!("0x00000000000000000000000000000000000000b2"),
                    json!("1000000000000000000"),
                ],
            )
            .unwrap();
        assert_eq!(data.len(), 4 + 3 * 32);
        // a uint256 result comes back as a decimal string, a small one as a number
        let p = Param {
            ty: "uint256".into(),
            name: String::new(),
            components: vec![],
            internal_type: None,
        };
        assert_eq!(
            to_json(
                &DynSolValue::Uint(
                    alloy_primitives::U256::from(10u64).pow(alloy_primitives::U256::from(18u64)),
                    256
                ),
                &p
            ),
            json!("1000000000000000000")
        );
        assert_eq!(
            to_json(&DynSolValue::Uint(alloy_primitives::U256::from(7u64), 8), &p),
            json!(7)
        );
    }
}
