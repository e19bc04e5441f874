//! Corrupted captured images give typed errors.

use pvloom_ldms::set::{SetError, SetMeta, decode_image};

/// list_sampler's meta+data image: list-record conn0 s2c READ_RESP @3132, payload at +36.
fn list_sampler() -> Vec<u8> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures/list-record/s2c.bin");
    let s = std::fs::read(p).unwrap_or_else(|e| panic!("capture {p} missing: {e}"));
    let img = s[3168..3168 + 10656].to_vec();
    decode_image(&img).expect("the original image decodes");
    img
}

fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

const META_SZ: usize = 1472;
const HEAP: usize = META_SZ + 480; // heap base in the image (data offset 480)

#[test]
fn heap_cycle() {
    let mut img = list_sampler();
    // LDMS_V_CHAR: entries at heap+396 -> 460 -> 524; point 460's next back at 396.
    put32(&mut img, HEAP + 460, 396);
    assert_eq!(decode_image(&img).unwrap_err(), SetError::HeapCycle { offset: 396 });
}

#[test]
fn self_loop() {
    let mut img = list_sampler();
    put32(&mut img, HEAP + 396, 396);
    assert!(matches!(decode_image(&img), Err(SetError::HeapCycle { offset: 396 })));
}

#[test]
fn entry_outside_heap() {
    let mut img = list_sampler();
    put32(&mut img, HEAP + 396, 0x7fff_fff0);
    assert!(matches!(decode_image(&img), Err(SetError::OutOfBounds { .. })));
}

#[test]
fn list_count_and_links() {
    let mut img = list_sampler();
    let meta = SetMeta::decode(&img).unwrap();
    let off = META_SZ + meta.metrics[3].data_offset as usize; // LDMS_V_CHAR {head, tail, count}
    put32(&mut img, off + 8, 4);
    assert!(matches!(decode_image(&img), Err(SetError::BadList(_))));
    let mut img = list_sampler();
    put32(&mut img, off + 4, 460);
    assert!(matches!(decode_image(&img), Err(SetError::BadList(_))));
}

#[test]
fn bad_type_code() {
    let mut img = list_sampler();
    let meta = SetMeta::decode(&img).unwrap();
    let d = meta.metrics[1].desc_offset as usize;
    img[d + 24] = 99;
    assert_eq!(SetMeta::decode(&img).unwrap_err(), SetError::BadTypeCode { index: 1, code: 99 });
    // A list entry with an unknown type code.
    let mut img = list_sampler();
    img[HEAP + 396 + 8] = 0;
    assert!(matches!(decode_image(&img), Err(SetError::BadTypeCode { code: 0, .. })));
}

#[test]
fn offsets_past_the_end() {
    let mut img = list_sampler();
    let meta = SetMeta::decode(&img).unwrap();
    let d = meta.metrics[0].desc_offset as usize; // component_id, a meta value
    put32(&mut img, d + 8, 0xffff_fff0);
    assert!(matches!(SetMeta::decode(&img), Err(SetError::OutOfBounds { .. })));
    // Dict entry pointing past the meta section.
    let mut img = list_sampler();
    put32(&mut img, 140, META_SZ as u32 - 4);
    assert!(matches!(SetMeta::decode(&img), Err(SetError::OutOfBounds { .. })));
    // Truncated images.
    let img = list_sampler();
    for n in [0, 10, 139, 1000, META_SZ + 50, img.len() - 1] {
        assert!(decode_image(&img[..n]).is_err(), "{n} bytes");
    }
    // Heap larger than the data section.
    let mut img = list_sampler();
    put32(&mut img, 108, 100_000);
    assert!(matches!(decode_image(&img), Err(SetError::BadSize(_))));
}
