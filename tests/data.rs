//! Data loading: atlas slicing (grid tiles and packed off-grid sprites), the validation split,
//! folder loading and its errors.

use image::{Rgba, RgbaImage};
use lediflow::data::{Dataset, load_folder, slice_atlas};

fn fill(img: &mut RgbaImage, x0: u32, y0: u32, w: u32, h: u32, c: [u8; 4]) {
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            img.put_pixel(x, y, Rgba(c));
        }
    }
}

fn opaque(img: &RgbaImage) -> usize {
    img.pixels().filter(|p| p.0[3] > 16).count()
}

/// 4x3 cells of 32 px. Row 0: two touching opaque floor tiles, a sprite inside its cell, an
/// empty cell. Row 1: an almost empty cell (3 pixels) and nothing else. Row 2: two 20x20 sprites
/// packed off the grid (crossing the x = 32 and x = 64 lines), as in player.png's lower part.
fn synthetic_atlas() -> RgbaImage {
    let mut img = RgbaImage::new(128, 96);
    fill(&mut img, 0, 0, 64, 32, [90, 60, 30, 255]);
    fill(&mut img, 8, 8, 4, 4, [200, 0, 0, 255]); // detail inside floor tile 0
    fill(&mut img, 70, 6, 12, 20, [0, 200, 0, 255]);
    fill(&mut img, 1, 33, 3, 1, [255, 255, 255, 255]);
    fill(&mut img, 22, 70, 20, 20, [0, 0, 255, 255]);
    fill(&mut img, 50, 66, 20, 24, [255, 255, 0, 255]);
    img
}

#[test]
fn atlas_slicing_keeps_grid_tiles_and_recentres_packed_sprites() {
    let tiles = slice_atlas(&synthetic_atlas(), 32);
    let names: Vec<&str> = tiles.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(tiles.len(), 5, "{names:?}");
    // Grid tiles, unchanged, in grid order.
    assert_eq!(names[..3], ["cell 0,0", "cell 1,0", "cell 2,0"]);
    assert_eq!(opaque(&tiles[0].0), 32 * 32);
    assert_eq!(tiles[0].0.get_pixel(9, 9).0, [200, 0, 0, 255]);
    assert_eq!(opaque(&tiles[2].0), 12 * 20);
    assert_eq!(tiles[2].0.get_pixel(6, 6).0, [0, 200, 0, 255], "sprite keeps its place in its cell");
    // Packed sprites: whole (not cut at x = 32 / 64) and centred.
    let blue = tiles.iter().find(|t| t.0.get_pixel(16, 16).0 == [0, 0, 255, 255]).expect("blue sprite");
    assert_eq!(opaque(&blue.0), 400);
    assert_eq!(blue.0.get_pixel(6, 6).0[3], 255);
    assert_eq!(blue.0.get_pixel(5, 5).0[3], 0);
    assert_eq!(blue.0.get_pixel(25, 25).0[3], 255);
    assert_eq!(blue.0.get_pixel(26, 26).0[3], 0);
    let yellow = tiles.iter().find(|t| t.0.get_pixel(16, 16).0 == [255, 255, 0, 255]).expect("yellow sprite");
    assert_eq!(opaque(&yellow.0), 480);
}

fn numbered(n: usize) -> Dataset {
    let mut ds = Dataset::new(16, 1);
    for i in 0..n {
        ds.pixels.extend(std::iter::repeat_n(i as u8, 256));
        ds.sources.push(format!("img {i}"));
    }
    ds
}

#[test]
fn validation_split_is_deterministic_and_disjoint() {
    let ds = numbered(95);
    let (t1, v1) = ds.split(10);
    let (t2, v2) = ds.split(10);
    assert_eq!((t1.clone(), v1.clone()), (t2, v2));
    assert_eq!(v1.len(), 9);
    assert_eq!(t1.len() + v1.len(), 95);
    for i in 0..v1.len() {
        assert!(!(0..t1.len()).any(|j| t1.image(j) == v1.image(i)));
    }
    assert_eq!(v1.sources[0], "img 9");
}

#[test]
fn mirrors_follow_the_images_flipped_left_to_right() {
    // 2 images of 3x3 pixels, 2 channels: pixel (x, y) of image i holds [10 i + 3 y + x, i].
    let mut ds = Dataset::new(3, 2);
    for i in 0..2u8 {
        for y in 0..3u8 {
            for x in 0..3u8 {
                ds.pixels.extend([10 * i + 3 * y + x, i]);
            }
        }
        ds.sources.push(format!("img {i}"));
    }
    let m = ds.with_mirrors();
    assert_eq!(m.len(), 4);
    assert_eq!(m.image(0), ds.image(0));
    assert_eq!(m.image(1), ds.image(1));
    assert_eq!(m.sources[3], "img 1 (mirrored)");
    for i in 0..2 {
        let (orig, flip) = (ds.image(i), m.image(2 + i));
        for y in 0..3 {
            for x in 0..3 {
                let (a, b) = ((y * 3 + x) * 2, (y * 3 + 2 - x) * 2);
                assert_eq!(flip[a..a + 2], orig[b..b + 2], "image {i} pixel ({x}, {y})");
            }
        }
    }
}

#[test]
fn duplicates_are_removed_before_splitting() {
    let mut ds = numbered(5);
    let first = ds.image(0).to_vec();
    ds.pixels.extend(first);
    ds.sources.push("copy of 0".into());
    assert_eq!(ds.dedup(), 1);
    assert_eq!(ds.len(), 5);
}

#[test]
fn folder_loading_resizes_and_reports_errors() {
    let dir = std::env::temp_dir().join(format!("lediflow-data-{}", std::process::id()));
    let sub = dir.join("nested");
    std::fs::create_dir_all(&sub).unwrap();
    let mut a = RgbaImage::new(48, 32);
    fill(&mut a, 0, 0, 48, 32, [10, 20, 30, 128]);
    a.save(dir.join("a.png")).unwrap();
    RgbaImage::from_pixel(8, 8, Rgba([255, 0, 0, 255])).save(sub.join("b.PNG")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    let ds = load_folder(&dir, 16, 4).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(&ds.image(0)[..4], &[10, 20, 30, 128], "alpha kept");
    assert_eq!(&ds.image(1)[..4], &[255, 0, 0, 255]);
    let grey = load_folder(&dir, 16, 1).unwrap();
    assert_eq!(grey.image(1)[0], 76); // BT.601 luma of pure red
    // Links back up the tree are read once, not until the kernel's link limit (or, with two
    // of them, exponentially often).
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&dir, sub.join("up")).unwrap();
        std::os::unix::fs::symlink(&dir, sub.join("up2")).unwrap();
        assert_eq!(load_folder(&dir, 16, 4).unwrap().len(), 2);
        std::fs::remove_file(sub.join("up")).unwrap();
        std::fs::remove_file(sub.join("up2")).unwrap();
    }
    std::fs::write(sub.join("broken.png"), b"\x89PNG not really").unwrap();
    let err = load_folder(&dir, 16, 4).unwrap_err().to_string();
    assert!(err.contains("broken.png"), "{err}");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(load_folder(&empty, 16, 4).unwrap_err().to_string().contains("no PNG or JPEG"));
    assert!(load_folder(&dir.join("missing"), 16, 4).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// CRC-32 (ISO-HDLC) of a PNG chunk's type and data.
fn png_crc(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn image_files_are_decoded_within_fixed_bounds() {
    use lediflow::data::{MAX_IMAGE_SIDE, decode_image};
    let mut png = Vec::new();
    image::DynamicImage::from(RgbaImage::from_pixel(8, 8, Rgba([1, 2, 3, 4])))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let px = decode_image(&png, 16, 4).unwrap();
    assert_eq!(px.len(), 16 * 16 * 4);
    assert_eq!(&px[..4], &[1, 2, 3, 4]);

    // A header claiming 60000 x 60000 pixels (14 GB as RGBA) with 8x8 of data: refused before
    // the pixels are allocated (the IHDR chunk starts at byte 8; width and height follow its type).
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&60000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&60000u32.to_be_bytes());
    let crc = png_crc(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    let err = decode_image(&huge, 16, 4).unwrap_err().to_string();
    const { assert!(60000 > MAX_IMAGE_SIDE) };
    assert!(err.contains("cannot read image") && err.to_lowercase().contains("limit"), "{err}");

    assert!(decode_image(b"not an image", 16, 4).is_err());
    assert!(decode_image(&png, 20, 4).unwrap_err().to_string().contains("unsupported geometry"));
}

#[test]
fn labels_follow_their_images_through_dedup_split_and_mirrors() {
    let mut ds = Dataset::new(16, 4);
    ds.classes = vec!["a".into(), "b".into()];
    for i in 0..12u8 {
        // Images 10 and 11 repeat 0 and 1.
        let v = i % 10;
        let img = RgbaImage::from_fn(16, 16, |x, _| Rgba([v * 20, x as u8, 0, 255]));
        ds.push_labelled(&img, format!("src{} cell {i}", i % 2), u32::from(v % 2));
    }
    assert_eq!(ds.dedup(), 2);
    assert_eq!((ds.len(), ds.labels.len()), (10, 10));
    assert_eq!(ds.class_counts(), vec![5, 5]);
    for i in 0..ds.len() {
        assert_eq!(ds.label(i), u32::from(ds.image(i)[0] / 20 % 2), "image {i} lost its label");
    }
    let m = ds.with_mirrors();
    assert_eq!(m.labels[10..], ds.labels[..]);
    // Per source and class: sources src0/src1 coincide with classes a/b here, 5 images each.
    let (train, val) = ds.split_per_group(5);
    assert_eq!((train.len(), val.len()), (8, 2));
    assert_eq!(val.class_counts(), vec![1, 1]);
    let (train2, val2) = ds.split_per_group(5);
    assert_eq!((train2, val2), (train, val), "the split is deterministic");
}

/// A scratch folder with `graf/32x32.png`, an atlas of `cells` (columns, rows) 32x32 cells, each
/// a flat square of colour (step.0 * column, step.1 * row, 7) except the transparent `empty`
/// cell, and an empty `pref/` folder. Returns (folder, graf, pref).
fn angband_atlas(
    name: &str,
    cells: (u32, u32),
    empty: (u32, u32),
    step: (u8, u8),
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("lediflow-{name}-{}", std::process::id()));
    let (graf, pref) = (dir.join("graf"), dir.join("pref"));
    std::fs::create_dir_all(&graf).unwrap();
    std::fs::create_dir_all(&pref).unwrap();
    let atlas = RgbaImage::from_fn(32 * cells.0, 32 * cells.1, |x, y| {
        let (cx, cy) = (x / 32, y / 32);
        if (cx, cy) == empty { Rgba([0, 0, 0, 0]) } else { Rgba([step.0 * cx as u8, step.1 * cy as u8, 7, 255]) }
    });
    atlas.save(graf.join("32x32.png")).unwrap();
    (dir, graf, pref)
}

#[test]
fn angband_tiles_are_labelled_from_the_pref_files() {
    use lediflow::data::{TILE_CLASSES, load_angband};
    // A 4x2-cell atlas: every cell a distinct flat square (cell 3,1 left empty).
    let (dir, graf, pref) = angband_atlas("angband", (4, 2), (3, 1), (40, 100));
    std::fs::write(
        pref.join("graf-dvg.prf"),
        "# <darkness>\nF:0:all:0x80:0x80\n# open floor\nF:1:lit:0x80:0x81\n# granite wall\nF:56:lit:0x80:0x82\n\
         # up staircase\nF:6:lit:0x80:0x83\nK:1:2:0x81:0x80\nR:5:0x81:0x81\nR:6:0x81:0x83\nR:7:0x81:0x81\n",
    )
    .unwrap();
    std::fs::write(pref.join("xtra-dvg.prf"), "?:[EQU $RACE Human]\nR:0:0x81:0x82\n").unwrap();
    std::fs::write(pref.join("flvr-dvg.prf"), "L:3:0x81:0x80\n").unwrap();
    let ds = load_angband(&graf, &pref, 4).unwrap();
    let names: Vec<&str> = ds.labels.iter().map(|&l| TILE_CLASSES[l as usize]).collect();
    // Darkness is skipped, the empty cell and the repeated assignments are taken once.
    assert_eq!(names, ["floor", "wall", "feature", "item", "creature", "creature"]);
    assert_eq!(ds.sources[0], "angband cell 1,0");
    assert_eq!(&ds.image(3)[..4], &[0, 100, 7, 255]);
    std::fs::remove_file(pref.join("flvr-dvg.prf")).unwrap();
    let err = load_angband(&graf, &pref, 4).unwrap_err().to_string();
    assert!(err.contains("flvr-dvg.prf") && err.contains("apt-get install angband"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn angband_creature_rows_add_unnamed_cells_after_the_pref_tiles() {
    use lediflow::data::{ANGBAND_ROW_LABEL, TILE_CLASSES, load_angband, load_angband_with};
    // A 10x3-cell atlas, every cell a distinct flat square except cell 9,0 (empty).
    let (dir, graf, pref) = angband_atlas("angband-rows", (10, 3), (9, 0), (20, 80));
    // Row 0: eight monsters named, cell 8 drawn but unnamed. Row 1: eight monsters and an object
    // (mixed). Row 2: a single monster (too few named to say what the row holds).
    let mut prf = String::new();
    for col in 0..8 {
        prf += &format!("R:{col}:0x80:0x{:x}\nR:{}:0x81:0x{:x}\n", 0x80 + col, 10 + col, 0x80 + col);
    }
    prf += "K:1:1:0x81:0x88\nR:30:0x82:0x80\n";
    std::fs::write(pref.join("graf-dvg.prf"), prf).unwrap();
    std::fs::write(pref.join("xtra-dvg.prf"), "").unwrap();
    std::fs::write(pref.join("flvr-dvg.prf"), "").unwrap();
    let plain = load_angband(&graf, &pref, 4).unwrap();
    assert_eq!(plain.len(), 18);
    let ds = load_angband_with(&graf, &pref, 4, true).unwrap();
    assert_eq!(ds.len(), 19, "only the unnamed drawn cell of the all-creature row is added");
    assert_eq!(ds.sources[18], format!("angband cell 8,0 {ANGBAND_ROW_LABEL}"));
    assert_eq!(TILE_CLASSES[ds.label(18) as usize], "creature");
    assert_eq!(&ds.image(18)[..4], &[160, 0, 7, 255]);
    assert_eq!(ds.sources[..18], plain.sources[..]);
    // The pref-file tiles keep their held-out split; the added one joins its group's count.
    let held = |d: &Dataset| {
        let (_, val) = d.split_per_group(5);
        val.sources.iter().filter(|s| !s.ends_with(ANGBAND_ROW_LABEL)).cloned().collect::<Vec<_>>()
    };
    assert_eq!(held(&ds), held(&plain));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn whole_dcss_sprites_leave_out_the_creature_atlas_parts() {
    use lediflow::data::load_dcss_whole;
    let dir = std::env::temp_dir().join(format!("lediflow-dcss-whole-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let one = |c: u8| {
        let mut img = RgbaImage::new(64, 32);
        fill(&mut img, 4, 4, 20, 20, [c, 9, 9, 255]);
        img
    };
    for (i, name) in ["main.png", "floor.png", "wall.png", "feat.png"].iter().enumerate() {
        one(40 * i as u8 + 10).save(dir.join(name)).unwrap();
    }
    // A player.png of the known size: a sprite in the demon-parts rows (cell 3,2), one among the
    // whole monsters (cell 5,35) and one in the player doll's rows (cell 7,60).
    let mut player = RgbaImage::new(1024, 2083);
    for (i, (cx, cy)) in [(3u32, 2u32), (5, 35), (7, 60)].into_iter().enumerate() {
        fill(&mut player, cx * 32 + 6, cy * 32 + 6, 20, 20, [200, 50 * i as u8, 30, 255]);
    }
    player.save(dir.join("player.png")).unwrap();
    let (kept, dropped) = load_dcss_whole(&dir, 4).unwrap();
    let players = |ds: &Dataset| ds.sources.iter().filter(|s| s.starts_with("player.png")).cloned().collect::<Vec<_>>();
    assert_eq!(players(&kept), ["player.png cell 5,35"]);
    assert_eq!(players(&dropped), ["player.png cell 3,2", "player.png cell 7,60"]);
    assert_eq!(kept.len(), 5, "the other atlases are kept whole");
    // Another layout is refused, not guessed at.
    RgbaImage::new(1024, 2048).save(dir.join("player.png")).unwrap();
    let err = load_dcss_whole(&dir, 4).unwrap_err().to_string();
    assert!(err.contains("0.28") && err.contains("1024x2048"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn relabelling_maps_classes_by_name_and_refuses_strangers() {
    let mut ds = Dataset::new(16, 4);
    ds.classes = vec!["item".into(), "wall".into()];
    for i in 0..4u8 {
        ds.push_labelled(&RgbaImage::from_pixel(16, 16, Rgba([i * 50, 0, 0, 255])), format!("{i}"), u32::from(i % 2));
    }
    let names: Vec<String> = ["floor", "wall", "feature", "item"].iter().map(|s| s.to_string()).collect();
    let mut relabelled = ds.clone();
    relabelled.relabel(&names).unwrap();
    assert_eq!(relabelled.classes, names);
    assert_eq!(relabelled.labels, [3, 1, 3, 1]);
    assert_eq!(relabelled.class_counts(), [0, 2, 0, 2]);
    let err = ds.relabel(&names[..2]).unwrap_err().to_string();
    assert!(err.contains("item") && err.contains("floor, wall"), "{err}");
    assert_eq!(ds.labels, [0, 1, 0, 1], "a refused relabelling changes nothing");
}
