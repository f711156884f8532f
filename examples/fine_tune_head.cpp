// Fine-tune a classifier's head on your own images with a plain LibTorch
// loop: the pretrained backbone stays frozen (a linear probe), its
// embeddings come from mnv2::ImageClassifier (the weights' own
// preprocessing), and a new torch::nn::Linear learns the new classes. The
// result is saved as weights mnv2-eval and ImageClassifier open.
//
//   fine_tune_head WEIGHTS TRAIN_DIR VAL_DIR OUTPUT.pth [--per-class N]
//
// TRAIN_DIR and VAL_DIR are ImageFolders (one folder of images per class).
// Exits 0 when the new head beats chance three times over on VAL_DIR.
#include <mobilenetv2/classifier/image_classifier.h>
#include <mobilenetv2/torch_files/state_dict.h>
#include <mobilenetv2/vision/vision.h>
#include <mobilenetv2/weights/sidecar.h>

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct Folder {
  std::vector<std::string> classes;
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
};

// An ImageFolder: classes are the sorted sub-folders, at most `per_class`
// images of each.
Folder read_folder(const fs::path& root, size_t per_class) {
  Folder out;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.is_directory()) {
      out.classes.push_back(entry.path().filename().string());
    }
  }
  std::sort(out.classes.begin(), out.classes.end());
  for (size_t c = 0; c < out.classes.size(); ++c) {
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(root / out.classes[c])) {
      files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    files.resize(std::min(files.size(), per_class));
    for (const auto& file : files) {
      out.paths.push_back(file);
      out.labels.push_back(static_cast<int64_t>(c));
    }
  }
  return out;
}

// The frozen backbone's embeddings of a folder's images, [N, 1280].
torch::Tensor embeddings(const mnv2::ImageClassifier& classifier,
                         const Folder& folder) {
  std::vector<torch::Tensor> parts;
  for (size_t start = 0; start < folder.paths.size(); start += 32) {
    std::vector<torch::Tensor> images;
    for (size_t i = start; i < std::min(start + 32, folder.paths.size()); ++i) {
      images.push_back(
          mnv2::read_image(folder.paths[i], classifier.eval_transform()));
    }
    parts.push_back(classifier.embed(images));
  }
  return torch::cat(parts);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: fine_tune_head WEIGHTS TRAIN_DIR VAL_DIR OUTPUT.pth "
                 "[--per-class N]\n");
    return 2;
  }
  size_t per_class = 1000000;
  if (argc >= 7 && std::string(argv[5]) == "--per-class") {
    per_class = std::stoul(argv[6]);
  }
  try {
    torch::manual_seed(0);
    const auto classifier = mnv2::ImageClassifier::open(argv[1]);
    const auto train = read_folder(argv[2], per_class);
    const auto val = read_folder(argv[3], per_class);
    const auto x_train = embeddings(classifier, train);
    const auto y_train = torch::tensor(train.labels);
    const auto classes = static_cast<int64_t>(train.classes.size());

    // The plain loop: a new head on the frozen embeddings.
    torch::nn::Linear head(x_train.size(1), classes);
    torch::optim::Adam optimizer(head->parameters(),
                                 torch::optim::AdamOptions(1e-2));
    for (int epoch = 0; epoch < 100; ++epoch) {
      const auto order = torch::randperm(x_train.size(0));
      for (int64_t start = 0; start < order.size(0); start += 64) {
        const auto batch = order.slice(0, start, start + 64);
        optimizer.zero_grad();
        const auto loss = torch::nn::functional::cross_entropy(
            head(x_train.index_select(0, batch)),
            y_train.index_select(0, batch));
        loss.backward();
        optimizer.step();
      }
    }
    torch::NoGradGuard no_grad;
    const auto predicted = head(embeddings(classifier, val)).argmax(1);
    const double accuracy = predicted.eq(torch::tensor(val.labels))
                                .to(torch::kDouble)
                                .mean()
                                .item<double>();
    std::printf("%zu training images, %zu classes: val top-1 %.1f%%\n",
                train.paths.size(),
                train.classes.size(),
                100 * accuracy);

    // The backbone with the new head, saved as torchvision-layout weights
    // plus the .json that names the classes and keeps the preprocessing.
    mnv2::StateDict state;
    for (const auto& item : mnv2::state_dict_of(*classifier.model().eager())) {
      state.insert(item.key(), item.value().contiguous());
    }
    state["classifier.1.weight"] = head->weight.detach().clone();
    state["classifier.1.bias"] = head->bias.detach().clone();
    auto info = classifier.info();
    info.options.num_classes(classes);
    info.class_names = train.classes;
    mnv2::write_state_dict(state, argv[4]);
    mnv2::write_weights_metadata(info, argv[4]);
    std::printf("saved %s and its .json\n", argv[4]);
    return accuracy * static_cast<double>(classes) >= 3.0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fine_tune_head: %s\n", e.what());
    return 1;
  }
}
