//! The model description: shape inference on the zoo, GEMM views and MAC counts against hand
//! computations, published parameter and MAC figures, model files (TOML = JSON, errors),
//! SCALE-Sim topologies and sparsity-policy resolution.

use satkit_compiler::model::{
    self, from_topology, resolve, zoo, BpMaskSource, Gemm, LayerFormats, LayerKind, Method, Model, ModelFormat, Shape,
    SparsityPolicy,
};
use satkit_compiler::scalesim::{parse_topology, TopologyKind};
use satkit_hw::isa::WeightFormat;
use satkit_hw::nm::NmRatio;
use std::path::Path;

fn toml(text: &str) -> satkit_compiler::Result<Model> {
    model::parse(text, ModelFormat::Toml, "m.toml")
}

fn err(result: satkit_compiler::Result<Model>) -> String {
    result.expect_err("the model should be refused").to_string()
}

fn g(m: u64, n: u64, k: u64, groups: u64) -> Gemm {
    Gemm { m, n, k, groups }
}

fn nm(n: u32, m: u32) -> NmRatio {
    NmRatio::new(n, m).unwrap()
}

#[test]
fn every_zoo_model_infers_and_ends_in_its_classes() {
    for name in zoo::NAMES {
        let model = zoo::get(name).unwrap();
        for batch in [1, 4] {
            let infos = model.infer(batch).unwrap();
            assert_eq!(infos.len(), model.layers.len());
            let loss_input = infos.last().unwrap().input_shapes[0];
            assert_eq!(loss_input, Shape::Flat(model.classes.unwrap()), "{name}");
            for info in &infos {
                let macs = info.gemms.as_ref().map(|g| g.macs());
                if let (Some(m), true) = (macs, model.layers[info.index].kind.has_weights()) {
                    assert!(m.ff == m.bp && m.bp == m.wu, "{name}: {}: {m:?}", model.layers[info.index].name);
                }
            }
        }
    }
    assert!(zoo::get("alexnet").unwrap_err().to_string().contains("resnet50-imagenet"));
}

#[test]
fn fashion_mnist_models_match_the_training_crate() {
    for name in satkit_train::MODEL_NAMES {
        let ours = zoo::get(name).unwrap();
        let infos = ours.infer(1).unwrap();
        let theirs = satkit_train::model_spec(name).unwrap();
        assert_eq!(ours.input, Shape::Image { c: 1, h: 28, w: 28 });
        assert_eq!(ours.classes, Some(theirs.classes as u64));
        // Same layers in the same order, then our loss.
        assert_eq!(ours.layers.len(), theirs.layers.len() + 1, "{name}");
        for (spec, (layer, info)) in theirs.layers.iter().zip(ours.layers.iter().zip(&infos)) {
            assert_eq!(layer.name, spec.name, "{name}");
            let dims = |s: &[usize]| s.iter().map(|&d| d as u64).collect::<Vec<_>>();
            assert_eq!(info.input_shapes[0].dims(), dims(&spec.input), "{name}: {}", spec.name);
            assert_eq!(info.output.dims(), dims(&spec.output), "{name}: {}", spec.name);
            if let Some(gemm) = spec.gemm() {
                let ff = info.gemms.as_ref().unwrap().ff;
                assert_eq!((ff.m, ff.n, ff.k), (gemm.pixels as u64, gemm.c_out as u64, gemm.k as u64), "{name}: {}", spec.name);
            }
        }
    }
}

#[test]
fn published_parameter_and_mac_figures() {
    // torchvision / timm / pytorch-cifar parameter counts, biases and norm scale and shift included.
    for (name, params) in [
        ("resnet18-imagenet", 11_689_512),
        ("resnet50-imagenet", 25_557_032),
        ("deit-tiny", 5_717_416),
        ("resnet18-cifar10", 11_173_962),
        ("vgg16-cifar10", 14_728_266),
    ] {
        assert_eq!(zoo::get(name).unwrap().params().unwrap(), params, "{name}");
    }
    // Forward MACs per image: 1.82 G (ResNet-18), 4.09 G (ResNet-50), 1.25 G (DeiT-Ti).
    for (name, gmac, tolerance) in
        [("resnet18-imagenet", 1.82, 0.01), ("resnet50-imagenet", 4.09, 0.01), ("deit-tiny", 1.25, 0.02)]
    {
        let macs = zoo::get(name).unwrap().macs(1).unwrap();
        let got = macs.ff as f64 / 1e9;
        assert!((got / gmac - 1.0).abs() < tolerance, "{name}: {got} GMAC");
    }
    // Batch scales every phase linearly; BP and WU equal FF on CNNs.
    let resnet = zoo::get("resnet18-imagenet").unwrap();
    let (one, eight) = (resnet.macs(1).unwrap(), resnet.macs(8).unwrap());
    assert_eq!((eight.ff, eight.bp, eight.wu), (8 * one.ff, 8 * one.bp, 8 * one.wu));
    assert!(one.ff == one.bp && one.bp == one.wu);
    // DeiT: attention GEMMs have two BP GEMMs and no WU.
    let deit = zoo::get("deit-tiny").unwrap().macs(1).unwrap();
    let attention = 12 * 2 * 3 * 197 * 197 * 64;
    assert_eq!((deit.bp - deit.ff, deit.ff - deit.wu), (attention, attention));
}

#[test]
fn grouped_strided_padded_conv_gemms_match_the_hand_count() {
    let model = toml(
        r#"
        input = [8, 10, 10]
        [[layers]]
        name = "c"
        kind = "conv2d"
        out_channels = 12
        kernel = [3, 3]
        stride = 2
        padding = 1
        groups = 4
        bias = false
        [[layers]]
        name = "ceil"
        kind = "conv2d"
        out_channels = 4
        kernel = 2
        stride = 2
        ceil_mode = true
        "#,
    )
    .unwrap();
    let infos = model.infer(3).unwrap();
    // OH = OW = floor((10 + 2 - 3) / 2) + 1 = 5; P = 3*25 = 75; per group Ng = 3, Kg = 2*3*3 = 18.
    let c = &infos[0];
    assert_eq!(c.output, Shape::Image { c: 12, h: 5, w: 5 });
    let gemms = c.gemms.as_ref().unwrap();
    assert_eq!(gemms.ff, g(75, 3, 18, 4));
    assert_eq!(gemms.bp, vec![g(75, 18, 3, 4)]);
    assert_eq!(gemms.wu, Some(g(3, 18, 75, 4)));
    // B*OH*OW*C_out*(C_in/g)*kh*kw = 3*25*12*2*9.
    let macs = gemms.macs();
    assert_eq!((macs.ff, macs.bp, macs.wu), (16_200, 16_200, 16_200));
    assert_eq!(c.params, 12 * 2 * 9);
    assert_eq!((c.input_elements(), c.output_elements()), (3 * 800, 3 * 300));
    // ceil_mode on 5x5 with 2x2/2: ceil(3/2)+1 = 3 (a partial window), 12*4+4 parameters.
    assert_eq!(infos[1].output, Shape::Image { c: 4, h: 3, w: 3 });
    assert_eq!(infos[1].params, 4 * 12 * 4 + 4);
    assert_eq!(infos[1].gemms.as_ref().unwrap().ff, g(27, 4, 48, 1));
}

#[test]
fn linear_and_attention_gemms_match_the_hand_count() {
    let model = toml(
        r#"
        input = [6, 12]
        [[layers]]
        name = "q"
        kind = "linear"
        out_features = 12
        inputs = ["input"]
        [[layers]]
        name = "k"
        kind = "linear"
        out_features = 12
        inputs = ["input"]
        [[layers]]
        name = "v"
        kind = "linear"
        out_features = 12
        bias = false
        inputs = ["input"]
        [[layers]]
        name = "s"
        kind = "attention_scores"
        heads = 3
        inputs = ["q", "k"]
        [[layers]]
        name = "p"
        kind = "attention_softmax"
        [[layers]]
        name = "o"
        kind = "attention_values"
        inputs = ["p", "v"]
        [[layers]]
        name = "wide"
        kind = "linear"
        out_features = 24
        "#,
    )
    .unwrap();
    let infos = model.infer(2).unwrap();
    let gemms = |i: usize| infos[i].gemms.clone().unwrap();
    // Linear on tokens: M = B*T = 12.
    assert_eq!(gemms(0).ff, g(12, 12, 12, 1));
    assert_eq!((infos[0].params, infos[2].params), (12 * 12 + 12, 12 * 12));
    assert_eq!(
        (gemms(6).ff, gemms(6).bp.clone(), gemms(6).wu),
        (g(12, 24, 12, 1), vec![g(12, 12, 24, 1)], Some(g(24, 12, 12, 1)))
    );
    assert_eq!(gemms(6).macs().ff, 2 * 6 * 12 * 24);
    // Scores: B*h = 6 GEMMs of (T, T, dh) = (6, 6, 4); dQ = dS.K and dK = dS^T.Q; no WU.
    assert_eq!(infos[3].output, Shape::Scores { heads: 3, t_q: 6, t_k: 6 });
    assert_eq!(gemms(3).ff, g(6, 6, 4, 6));
    assert_eq!(gemms(3).bp, vec![g(6, 4, 6, 6), g(6, 4, 6, 6)]);
    assert_eq!(gemms(3).wu, None);
    // Values: (T, dh, T); dP = dO.V^T is (T, T, dh), dV = P^T.dO is (T, dh, T).
    assert_eq!(gemms(5).ff, g(6, 4, 6, 6));
    assert_eq!(gemms(5).bp, vec![g(6, 6, 4, 6), g(6, 4, 6, 6)]);
    assert_eq!(infos[5].output, Shape::Tokens { t: 6, d: 12 });
    let macs = gemms(5).macs();
    assert_eq!((macs.ff, macs.bp, macs.wu), (6 * 6 * 4 * 6, 2 * 6 * 6 * 4 * 6, 0));
    assert!(!model.layers[3].kind.has_weights() && model.layers[3].kind.is_gemm());
}

#[test]
fn toml_and_json_give_the_same_model() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let from_toml = model::load(&path).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    let json = serde_json::to_string_pretty(&value).unwrap();
    let from_json = model::parse(&json, ModelFormat::Json, "example.json").unwrap();
    assert_eq!(from_toml, from_json);
    assert_eq!(from_toml.name, "example");
    // A hand-written pair, with the default inputs and name from the file stem.
    let t = toml("input = [4]\nclasses = 2\n[[layers]]\nname = \"fc\"\nkind = \"linear\"\nout_features = 2\n[[layers]]\nname = \"loss\"\nkind = \"softmax_cross_entropy\"\n").unwrap();
    let j = model::parse(
        r#"{"input": [4], "classes": 2, "layers": [{"name": "fc", "kind": "linear", "out_features": 2},
            {"name": "loss", "kind": "softmax_cross_entropy"}]}"#,
        ModelFormat::Json,
        "m.json",
    )
    .unwrap();
    assert_eq!(t, j);
    assert_eq!(t.name, "m");
    assert_eq!(t.layers[0].inputs, vec!["input"]);
    assert_eq!(t.layers[1].inputs, vec!["fc"]);
    // The example's fixed sparsities.
    assert_eq!(from_toml.layers[0].sparsity, Some(WeightFormat::Dense));
    assert_eq!(from_toml.layers[6].sparsity, Some(WeightFormat::Sparse(nm(1, 4))));
    assert!(ModelFormat::from_path(Path::new("x.csv")).is_err());
}

const HEAD: &str = "input = [8, 6, 6]\nclasses = 4\n";

#[test]
fn bad_model_files_say_where_and_what() {
    let cases: [(&str, &[&str]); 10] = [
        ("[[layers]]\nname = \"a\"\nkind = \"conv3d\"\n", &["m.toml:3:", "layer #0 `a`", "unknown layer kind `conv3d`"]),
        ("[[layers]]\nname = \"a\"\nkind = \"relu\"\n[[layers]]\nname = \"c\"\nkind = \"conv2d\"\nkernel = 3\n", &[
            "m.toml:6:",
            "layer #1 `c`",
            "missing field `out_channels`",
        ]),
        ("[[layers]]\nname = \"a\"\nkind = \"relu\"\n[[layers]]\nname = \"f\"\nkind = \"linear\"\nout_features = 4\n", &[
            "m.toml:6:",
            "`f`",
            "flatten",
        ]),
        ("[[layers]]\nname = \"a\"\nkind = \"relu\"\n[[layers]]\nname = \"b\"\nkind = \"add\"\ninputs = [\"a\", \"nope\"]\n", &[
            "m.toml:6:",
            "`b`",
            "unknown input `nope`",
        ]),
        ("[[layers]]\nname = \"a\"\nkind = \"relu\"\n[[layers]]\nname = \"a\"\nkind = \"relu\"\n", &["m.toml:6:", "duplicate name"]),
        // Shape mismatch on an add: [16, 6, 6] + [8, 6, 6].
        ("[[layers]]\nname = \"c\"\nkind = \"conv2d\"\nout_channels = 16\nkernel = 1\n[[layers]]\nname = \"s\"\nkind = \"add\"\ninputs = [\"c\", \"input\"]\n", &[
            "m.toml:8:",
            "`s`",
            "different shapes",
        ]),
        // N:M on K = 8*3*3 = 72: 72 is not a multiple of 16.
        ("[[layers]]\nname = \"c\"\nkind = \"conv2d\"\nout_channels = 16\nkernel = 3\nsparsity = \"2:16\"\n", &[
            "m.toml:3:",
            "`c`",
            "FF reduction K = 72 is not a multiple of M = 16",
        ]),
        // N:M on C_out = 12: K = 8 fits 2:8, the BP groups do not.
        ("[[layers]]\nname = \"c\"\nkind = \"conv2d\"\nout_channels = 12\nkernel = 1\nsparsity = \"2:8\"\n", &[
            "m.toml:3:",
            "BP reduction C_out = 12",
        ]),
        ("[[layers]]\nname = \"c\"\nkind = \"conv2d\"\nout_channels = 8\nkernel = 3\nsize = 2\n", &["m.toml:3:", "unknown field `size`"]),
        ("[[layers]]\nname = \"c\"\nkind = \"conv2d\"\nout_channels = \"eight\"\nkernel = 3\n", &["m.toml:3:", "out_channels"]),
    ];
    for (body, wanted) in cases {
        let e = err(toml(&format!("{HEAD}{body}")));
        for w in wanted {
            assert!(e.contains(w), "`{w}` not in: {e}");
        }
    }
    // The model as a whole: the loss and the classes.
    let e = err(toml(&format!("{HEAD}[[layers]]\nname = \"f\"\nkind = \"flatten\"\n")));
    assert!(e.contains("m.toml:") && e.contains("not softmax_cross_entropy"), "{e}");
    let e = err(toml(&format!("{HEAD}[[layers]]\nname = \"loss\"\nkind = \"softmax_cross_entropy\"\n")));
    assert!(e.contains("`loss`") && e.contains("[4]"), "{e}");
    // Syntax and type errors carry the parser's line, in both formats.
    let e = err(toml("input = [1, 2, 3]\n[[layers]\nname = 1\n"));
    assert!(e.starts_with("m.toml:2:"), "{e}");
    let e = err(model::parse("{\"input\": [4],\n \"layers\": [\n {\"name\": 3}]}", ModelFormat::Json, "m.json"));
    assert!(e.starts_with("m.json:") && e.contains("name = 3 is not a string"), "{e}");
    let e = err(model::parse("{\"input\": [4],\n \"layers\": 7}", ModelFormat::Json, "m.json"));
    assert!(e.starts_with("m.json:2:"), "{e}");
    let e = err(model::parse(
        r#"{"input": [4], "layers": [{"name": "a", "kind": "relu"}, {"name": "b", "kind": "relu", "inputs": ["z"]}]}"#,
        ModelFormat::Json,
        "m.json",
    ));
    assert!(e.contains("m.json: layer #1 `b`: unknown input `z`"), "{e}");
    let e = err(model::load(Path::new("/nonexistent/m.toml")));
    assert!(e.contains("/nonexistent/m.toml: cannot read"), "{e}");
}

#[test]
fn scalesim_topologies_become_independent_layers() {
    let conv = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n\
                c1, 12, 12, 3, 3, 8, 8, 2,\n\
                c2, 56, 56, 1, 1, 64, 64, 1, 2:8,\n";
    let model = from_topology(conv, TopologyKind::Conv, "net.csv").unwrap();
    assert_eq!(model.name, "net");
    assert_eq!(model.classes, None);
    assert_eq!(model.layers[1].kind, LayerKind::Input { shape: Shape::Image { c: 64, h: 56, w: 56 } });
    assert_eq!(model.layers[2].sparsity, Some(WeightFormat::Sparse(nm(2, 8))));
    let rows = parse_topology(conv, TopologyKind::Conv, "net.csv").unwrap();
    let gemm = "Layer, M, N, K,\ng1, 100, 64, 256,\ng2, 7, 10, 512,\n";
    let gemm_model = from_topology(gemm, TopologyKind::Gemm, "g.csv").unwrap();
    let gemm_rows = parse_topology(gemm, TopologyKind::Gemm, "g.csv").unwrap();
    for (model, rows) in [(&model, &rows), (&gemm_model, &gemm_rows)] {
        for batch in [1, 3] {
            let ff: Vec<Gemm> = model.infer(batch).unwrap().iter().filter_map(|i| i.gemms.as_ref()).map(|g| g.ff).collect();
            let want: Vec<Gemm> = rows.iter().map(|r| g(batch * r.m, r.n, r.k, 1)).collect();
            assert_eq!(ff, want, "batch {batch}");
        }
    }
    // The conv geometry is kept: SCALE-Sim's partial edge window gives 6x6 from 12x12, 3x3/2.
    assert_eq!(model.infer(1).unwrap()[0].output, Shape::Image { c: 8, h: 6, w: 6 });
    // An N:M column whose M does not divide N (the BP reduction) is refused at its line.
    let e = from_topology("Layer, M, N, K,\ng1, 4, 4, 4,\ng2, 4, 10, 64, 2:8,\n", TopologyKind::Gemm, "g.csv")
        .unwrap_err()
        .to_string();
    assert!(e.contains("g.csv:3: layer `g2`") && e.contains("C_out = 10"), "{e}");
}

fn formats(model: &Model, policy: &SparsityPolicy) -> Vec<(String, WeightFormat, WeightFormat)> {
    resolve(model, policy).unwrap().into_iter().map(|LayerFormats { name, ff, bp, .. }| (name, ff, bp)).collect()
}

#[test]
fn policies_resolve_dense_srste_and_bdwp() {
    use WeightFormat::{Dense, Sparse};
    let vgg = zoo::get("vgg16-cifar10").unwrap();
    let r = nm(2, 8);
    let dense = formats(&vgg, &SparsityPolicy::new(Method::Dense, r));
    assert_eq!(dense.len(), 14);
    assert!(dense.iter().all(|(_, ff, bp)| *ff == Dense && *bp == Dense));
    let srste = formats(&vgg, &SparsityPolicy::new(Method::Srste, r));
    let bdwp = formats(&vgg, &SparsityPolicy::new(Method::Bdwp, r));
    for (i, ((name, sff, sbp), (_, bff, bbp))) in srste.iter().zip(&bdwp).enumerate() {
        if i == 0 || i == 13 {
            assert_eq!((sff, sbp, bff, bbp), (&Dense, &Dense, &Dense, &Dense), "{name}: first and last stay dense");
        } else {
            assert_eq!((sff, sbp, bff, bbp), (&Sparse(r), &Dense, &Sparse(r), &Sparse(r)), "{name}");
        }
    }
    // Without the first/last rule: conv1 (K = 27) and fc (C_out = 10) do not fit 2:8 and stay
    // dense automatically; under SR-STE the fc's FF (K = 512) fits.
    let open = SparsityPolicy { first_and_last_dense: false, ..SparsityPolicy::new(Method::Bdwp, r) };
    let f = formats(&vgg, &open);
    assert_eq!((f[0].1, f[13].1, f[1].1), (Dense, Dense, Sparse(r)));
    let f = formats(&vgg, &SparsityPolicy { method: Method::Srste, ..open.clone() });
    assert_eq!((f[0].1, f[13].1, f[13].2), (Dense, Sparse(r), Dense));
    // A middle layer that cannot hold the ratio is an error naming it, unless listed dense.
    let lenet = zoo::get("lenet5").unwrap();
    let coarse = SparsityPolicy::new(Method::Bdwp, nm(2, 16));
    let e = resolve(&lenet, &coarse).unwrap_err().to_string();
    assert!(e.contains("`conv2`") && e.contains("K = 200 is not a multiple of M = 16"), "{e}");
    // SR-STE only needs K: fc1 (K = 400) fits 2:16, conv2 (K = 200) and fc2 (K = 120) are listed.
    let listed = SparsityPolicy { method: Method::Srste, dense_layers: vec!["conv2".into(), "fc2".into()], ..coarse.clone() };
    let f = formats(&lenet, &listed);
    assert_eq!(f.iter().map(|x| x.1).collect::<Vec<_>>(), vec![Dense, Dense, Sparse(nm(2, 16)), Dense, Dense]);
    let e = resolve(&lenet, &SparsityPolicy { dense_layers: vec!["relu1".into()], ..coarse }).unwrap_err().to_string();
    assert!(e.contains("`relu1`"), "{e}");
    // Model-fixed sparsities and depthwise convs; the policy's ratio elsewhere.
    let example = model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/example.toml")).unwrap();
    let f = formats(&example, &SparsityPolicy::new(Method::Bdwp, r));
    let by_name = |n: &str| f.iter().find(|x| x.0 == n).map(|x| (x.1, x.2)).unwrap();
    assert_eq!(by_name("block.conv1"), (Sparse(r), Sparse(r)));
    assert_eq!(by_name("block.conv2"), (Sparse(nm(1, 4)), Sparse(nm(1, 4))));
    assert_eq!(by_name("dw"), (Dense, Dense));
    assert_eq!(by_name("pw"), (Sparse(r), Sparse(r)));
    // Attention activation GEMMs are listed and always dense; the linear layers are pruned.
    let deit = zoo::get("deit-tiny").unwrap();
    let f = formats(&deit, &SparsityPolicy::new(Method::Bdwp, r));
    assert_eq!(f.len(), 1 + 12 * 8 + 1);
    for (name, ff, bp) in &f {
        let attention = name.ends_with(".scores") || name.ends_with(".context");
        let edge = name == "patch_embed" || name == "head";
        assert_eq!((*ff == Dense, *bp == Dense), (attention || edge, attention || edge), "{name}");
    }
    assert_eq!("sr-ste".parse::<Method>().unwrap(), Method::Srste);
    assert_eq!("forward_masked".parse::<BpMaskSource>().unwrap().to_string(), "forward_masked");
    assert!("magnitude".parse::<Method>().is_err());
}
