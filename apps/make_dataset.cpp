// make_dataset: writes generated datasets in their published file layouts,
// so that the loaders read them exactly as they read the downloaded ones.
//   make_dataset listops --out DIR [--count N] [--seed S] [--min-length A] [--max-length B]
//                        [--max-depth D] [--max-args K]
//   make_dataset pathfinder --out DIR [--count N] [--seed S] [--resolution 32|128]
//                           [--contour-length 6|9|14] [--distractors K]
//   make_dataset imdb --aclimdb DIR --out DIR   (LRA Text files from the Stanford release)
// The synthetic token tasks (copying, selective_copying, induction_heads,
// associative_recall, adding) need no files: the loader generates them from
// data.seed. Bad input prints one line and exits with status 2.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "apps/omp_defaults.h"
#include "data/listops.h"
#include "data/lra_text.h"
#include "data/pathfinder.h"

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  CLI::App app{"Writes generated datasets in their published file layouts.", "make_dataset"};
  app.require_subcommand(1);

  std::string out;
  std::int64_t count = -1;
  std::uint64_t seed = 0;

  ssm::data::ListopsGenOptions lo;
  auto* listops = app.add_subcommand(
      "listops",
      "LRA ListOps with LRA's generator: basic_{train,val,test}.tsv (count for train; val and "
      "test get count/48 each, at least 1; default 96000 / 2000 / 2000)");
  listops->add_option("--out", out, "output folder")->required();
  listops->add_option("--count", count, "training examples (default 96000)");
  listops->add_option("--seed", seed, "random seed (default 0)");
  listops->add_option("--min-length", lo.min_length, "lengths are strictly above this (500)");
  listops->add_option("--max-length", lo.max_length, "lengths are strictly below this (2000)");
  listops->add_option("--max-depth", lo.max_depth, "deepest node (10)");
  listops->add_option("--max-args", lo.max_args, "most arguments of an operator (10)");

  ssm::data::PathfinderGenOptions po;
  auto* pathfinder = app.add_subcommand(
      "pathfinder",
      "Pathfinder / Path-X images: imgs/<b>/sample_<i>.png and metadata/<b>.npy (default count "
      "1000)");
  pathfinder->add_option("--out", out, "output folder")->required();
  pathfinder->add_option("--count", count, "images (default 1000)");
  pathfinder->add_option("--seed", seed, "random seed (default 0)");
  pathfinder->add_option("--resolution", po.resolution, "32 (Pathfinder) or 128 (Path-X)")
      ->check(CLI::IsMember({32, 128}));
  pathfinder->add_option("--contour-length", po.contour_length, "paddles per contour (6, 9, 14)");
  pathfinder->add_option("--distractors", po.distractors, "contours without markers (2)");

  std::string aclimdb;
  auto* imdb = app.add_subcommand(
      "imdb", "LRA Text files (train.tsv, test.tsv) from the unpacked aclImdb release");
  imdb->add_option("--aclimdb", aclimdb, "the aclImdb folder")->required();
  imdb->add_option("--out", out, "output folder")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "make_dataset: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    if (listops->parsed()) {
      ssm::data::ListopsCounts counts;
      if (count >= 0) {
        counts.train = count;
        counts.val = counts.test = std::max<std::int64_t>(1, count / 48);
      }
      ssm::data::write_listops(out, counts, lo, seed);
      std::printf("wrote %s/basic_{train,val,test}.tsv: %lld / %lld / %lld examples\n", out.c_str(),
                  static_cast<long long>(counts.train), static_cast<long long>(counts.val),
                  static_cast<long long>(counts.test));
    } else if (pathfinder->parsed()) {
      const std::int64_t n = count >= 0 ? count : 1000;
      ssm::data::write_pathfinder(out, n, po, seed);
      std::printf("wrote %lld images to %s/imgs with metadata in %s/metadata\n",
                  static_cast<long long>(n), out.c_str(), out.c_str());
    } else if (imdb->parsed()) {
      const auto [train, test] = ssm::data::write_imdb_tsv_from_aclimdb(aclimdb, out);
      std::printf("wrote %s/train.tsv (%lld reviews) and %s/test.tsv (%lld reviews)\n", out.c_str(),
                  static_cast<long long>(train), out.c_str(), static_cast<long long>(test));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_dataset: %s\n", e.what());
    return 2;
  }
}
