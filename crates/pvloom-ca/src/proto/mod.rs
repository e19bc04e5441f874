//! Sans-I/O Channel Access protocol core (protocol 4.13), shared by the
//! client and the server.
//!
//! Layers, bottom up:
//!
//! * [`header`]: the 16/24-byte header and raw [`Frame`]s.
//! * [`dbr`]: DBR types, metadata and values, encoded both ways.
//! * [`command`]: every command as a [`Command`] value; decoding needs the
//!   receiver's [`Role`] and the [`Transport`].
//! * [`decoder`]: O(N) zero-copy framing of TCP streams and datagrams.
//! * [`state`] and [`circuit`]: the protocol rules of a virtual circuit and the
//!   [`Circuit`] driver (send commands, receive events).
//! * [`search`]: UDP search/beacon packing.
//! * [`keepalive`]: the ECHO timer, driven by caller-supplied `Instant`s.
//! * [`constants`]: ports, limits, masks, ECA status codes.

pub mod circuit;
pub mod command;
pub mod constants;
pub mod dbr;
pub mod decoder;
pub mod error;
pub mod header;
pub mod keepalive;
pub mod search;
pub mod state;

pub use circuit::{Circuit, CircuitConfig, Event};
pub use command::{AccessRights, Command, Role, Transport};
pub use dbr::{
    Alarm, CaString, ControlLimits, DbrClass, DbrData, DbrType, EpicsTime, GraphicInfo, Metadata, NativeType, Value,
};
pub use decoder::{DecoderConfig, FrameDecoder, decode_datagram};
pub use error::{CircuitError, DbrError, DecodeError, EncodeError, FrameError, SendError, StateError};
pub use header::{Frame, Header};
pub use keepalive::{Keepalive, KeepaliveAction};
pub use search::{Broadcaster, DatagramEvent, SearchItem};
pub use state::{ChannelState, CircuitState};
