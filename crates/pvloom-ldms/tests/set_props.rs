//! Property tests: arbitrary bytes never make the decoder panic; mutated real images neither.

use proptest::prelude::*;
use pvloom_ldms::set::{SetData, SetMeta, decode_image};

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_image(&b);
        let _ = SetMeta::decode(&b);
    }

    #[test]
    fn mutated_image_never_panics(at in 0usize..4096, val in any::<u8>(), at2 in 0usize..4096, val2 in any::<u8>()) {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures/list-record/s2c.bin");
        let s = std::fs::read(p).expect("capture missing");
        // record_sampler meta+data image: READ_RESP at s2c @17220, payload at +36, 6 720 bytes.
        let mut img = s[17256..17256 + 6720].to_vec();
        let (meta, _) = decode_image(&img).expect("original decodes");
        let i = at % img.len();
        img[i] = val;
        let j = 3128 + at2 % (img.len() - 3128);
        img[j] = val2;
        let _ = decode_image(&img);
        if let Ok(m) = SetMeta::decode(&img) {
            let _ = m.encode();
        }
        let _ = SetData::decode(&meta, &img[3128..]);
    }
}
