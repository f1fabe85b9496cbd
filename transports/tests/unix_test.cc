#include "transports/unix/unix.h"

#include <sys/stat.h>

#include <fstream>

#include "ipch/testing.h"

namespace ipch::unix_sock {
namespace {

std::filesystem::path Scratch() { return testing::Current().scratch_dir; }

TEST(Unix, RefusesToClobberANonSocketFile) {
  auto path = Scratch() / "precious";
  std::ofstream(path) << "data";
  IPCH_EXPECT_ERRC(Listen(path.string()), AlreadyExists);
  std::ifstream in(path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "data") << "the existing file was damaged";
  std::filesystem::remove(path);
}

TEST(Unix, RefusesADirectoryOpenToOthers) {
  auto dir = Scratch() / "open";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  auto l = Listen((dir / "s.sock").string());
  IPCH_ASSERT_ERRC(l, PermissionDenied);
  EXPECT_NE(l.error().context.find("0755"), std::string::npos) << l.error().ToString();
  EXPECT_FALSE(std::filesystem::exists(dir / "s.sock"));
  std::filesystem::remove(dir);
}

TEST(Unix, CreatesMissingDirectoryPrivateAndRemovesIt) {
  auto dir = Scratch() / "made";
  {
    auto l = Listen((dir / "s.sock").string());
    IPCH_ASSERT_OK(l);
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_EQ(::lstat((dir / "s.sock").c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  EXPECT_FALSE(std::filesystem::exists(dir)) << "the listener's directory outlived it";
}

TEST(Unix, PathTooLongIsInvalidArgument) {
  std::string p = (Scratch() / std::string(120, 'x')).string();
  auto l = Listen(p);
  IPCH_ASSERT_ERRC(l, InvalidArgument);
  EXPECT_NE(l.error().context.find("107"), std::string::npos) << l.error().ToString();
  IPCH_EXPECT_ERRC(Connect(p, Deadline::Expired()), InvalidArgument);
}

TEST(Unix, ClosingDoesNotUnlinkAReplacement) {
  auto path = (Scratch() / "s.sock").string();
  auto first = Listen(path);
  IPCH_ASSERT_OK(first);
  // Someone replaces the socket file (e.g. a restarted server after a stale reclaim).
  std::filesystem::remove(path);
  auto second = Listen(path);
  IPCH_ASSERT_OK(second);
  IPCH_ASSERT_OK(first->Close());
  EXPECT_TRUE(std::filesystem::exists(path)) << "closing the old listener removed the new one's socket";
  auto c = Connect(path, Deadline::After(Scaled(std::chrono::seconds(5))));
  IPCH_EXPECT_OK(c);
}

}  // namespace
}  // namespace ipch::unix_sock
