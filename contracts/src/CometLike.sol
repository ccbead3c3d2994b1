// SPDX-License-Identifier: MIT
pragma solidity 0.8.19;

/// @title CometLike
/// @notice A devnet stand-in for a Compound III (Comet) market, written for liqmon's tests from Compound III's
///         documented semantics. Its view functions have Comet's signatures and integer arithmetic, so a reader
///         written against this contract also reads a mainnet Comet:
///         - base balances are signed principals; present value = principal * index / 1e15 (rounded down),
///           principal from a present value rounds down for supply and up for borrow;
///         - prices come from 8-decimal feeds (`getPrice` reverts on an answer <= 0);
///         - `isLiquidatable` / `isBorrowCollateralized` start from the signed USD value of the base balance and
///           add, for every collateral flagged in `assetsIn`, its USD value times the liquidate / borrow
///           collateral factor (1e18 scale), returning early once the liquidity is non-negative.
///         There is no interest accrual, token custody, absorption or buying of collateral: the governor sets
///         collateral balances, borrows and the indices directly (test-only mutators).
contract CometLike {
    struct AssetInfo {
        uint8 offset;
        address asset;
        address priceFeed;
        uint64 scale;
        uint64 borrowCollateralFactor;
        uint64 liquidateCollateralFactor;
        uint64 liquidationFactor;
        uint128 supplyCap;
    }

    struct UserBasic {
        int104 principal;
        uint64 baseTrackingIndex;
        uint64 baseTrackingAccrued;
        uint16 assetsIn;
        uint8 _reserved;
    }

    struct UserCollateral {
        uint128 balance;
        uint128 _reserved;
    }

    struct TotalsCollateral {
        uint128 totalSupplyAsset;
        uint128 _reserved;
    }

    uint64 internal constant BASE_INDEX_SCALE = 1e15;
    uint64 internal constant FACTOR_SCALE = 1e18;
    uint8 internal constant PRICE_FEED_DECIMALS = 8;
    uint64 internal constant PRICE_SCALE = 1e8;
    uint8 internal constant MAX_ASSETS = 15; // assetsIn is a uint16 bitmap, as in Comet
    bytes4 internal constant FEED_DECIMALS = bytes4(keccak256("decimals()"));
    bytes4 internal constant FEED_LATEST_ROUND_DATA = bytes4(keccak256("latestRoundData()"));

    address public immutable governor;
    address public immutable baseToken;
    address public immutable baseTokenPriceFeed;
    uint8 public immutable decimals;
    uint256 public immutable baseScale;

    uint8 public numAssets;
    uint64 public baseSupplyIndex;
    uint64 public baseBorrowIndex;
    uint104 public totalSupplyBase;
    uint104 public totalBorrowBase;

    mapping(uint8 => AssetInfo) internal assetInfos;
    mapping(address => UserBasic) public userBasic;
    mapping(address => mapping(address => UserCollateral)) public userCollateral;
    mapping(address => TotalsCollateral) public totalsCollateral;

    event Supply(address indexed from, address indexed dst, uint256 amount);
    event Withdraw(address indexed src, address indexed to, uint256 amount);
    event SupplyCollateral(address indexed from, address indexed dst, address indexed asset, uint256 amount);
    event WithdrawCollateral(address indexed src, address indexed to, address indexed asset, uint256 amount);

    error Unauthorized();
    error BadAsset();
    error BadDecimals();
    error BadPrice();
    error BadPriceFeed();
    error BadScale();
    error BadIndex();
    error BorrowCFTooLarge();
    error LiquidateCFTooLarge();
    error LiquidationFactorTooLarge();
    error TooManyAssets();
    error SupplyCapExceeded();
    error InvalidInt104();
    error InvalidUInt104();
    error InvalidInt256();

    modifier onlyGovernor() {
        if (msg.sender != governor) revert Unauthorized();
        _;
    }

    constructor(address baseToken_, address baseTokenPriceFeed_, uint8 decimals_) {
        if (decimals_ > 18) revert BadDecimals();
        if (_feedDecimals(baseTokenPriceFeed_) != PRICE_FEED_DECIMALS) revert BadDecimals();
        governor = msg.sender;
        baseToken = baseToken_;
        baseTokenPriceFeed = baseTokenPriceFeed_;
        decimals = decimals_;
        baseScale = 10 ** decimals_;
        baseSupplyIndex = BASE_INDEX_SCALE;
        baseBorrowIndex = BASE_INDEX_SCALE;
    }

    // -- constants, as Comet exposes them ----------------------------------------------------------

    function baseIndexScale() external pure returns (uint64) {
        return BASE_INDEX_SCALE;
    }

    function factorScale() external pure returns (uint64) {
        return FACTOR_SCALE;
    }

    function priceScale() external pure returns (uint64) {
        return PRICE_SCALE;
    }

    function maxAssets() external pure returns (uint8) {
        return MAX_ASSETS;
    }

    // -- assets and prices ----------------------------------------------------------------------------

    function getAssetInfo(uint8 i) public view returns (AssetInfo memory) {
        if (i >= numAssets) revert BadAsset();
        return assetInfos[i];
    }

    function getAssetInfoByAddress(address asset) public view returns (AssetInfo memory) {
        uint8 n = numAssets;
        for (uint8 i = 0; i < n; i++) {
            if (assetInfos[i].asset == asset) return assetInfos[i];
        }
        revert BadAsset();
    }

    /// @notice The feed's latest answer (8 decimals); reverts when it is not positive.
    function getPrice(address priceFeed) public view returns (uint256) {
        (, int256 answer, , , ) = abi.decode(
            _feedCall(priceFeed, FEED_LATEST_ROUND_DATA),
            (uint80, int256, uint256, uint256, uint80)
        );
        if (answer <= 0) revert BadPrice();
        return uint256(answer);
    }

    // -- balances -------------------------------------------------------------------------------------

    function balanceOf(address account) external view returns (uint256) {
        int104 principal = userBasic[account].principal;
        return principal > 0 ? _presentValueSupply(baseSupplyIndex, uint104(principal)) : 0;
    }

    function borrowBalanceOf(address account) external view returns (uint256) {
        int104 principal = userBasic[account].principal;
        return principal < 0 ? _presentValueBorrow(baseBorrowIndex, uint104(-principal)) : 0;
    }

    function collateralBalanceOf(address account, address asset) external view returns (uint128) {
        return userCollateral[account][asset].balance;
    }

    function totalSupply() external view returns (uint256) {
        return _presentValueSupply(baseSupplyIndex, totalSupplyBase);
    }

    function totalBorrow() external view returns (uint256) {
        return _presentValueBorrow(baseBorrowIndex, totalBorrowBase);
    }

    // -- account health -------------------------------------------------------------------------------

    /// @notice True when the account's debt exceeds its collateral value weighted by liquidateCollateralFactor.
    function isLiquidatable(address account) external view returns (bool) {
        UserBasic memory basic = userBasic[account];
        if (basic.principal >= 0) return false;
        int256 liquidity = _baseLiquidity(basic.principal);
        uint8 n = numAssets;
        for (uint8 i = 0; i < n; i++) {
            if (!_isInAsset(basic.assetsIn, i)) continue;
            if (liquidity >= 0) return false;
            AssetInfo memory info = assetInfos[i];
            liquidity += _signed256(_mulFactor(_collateralValue(account, info), info.liquidateCollateralFactor));
        }
        return liquidity < 0;
    }

    /// @notice True when the account's debt is covered by its collateral value weighted by borrowCollateralFactor.
    function isBorrowCollateralized(address account) external view returns (bool) {
        UserBasic memory basic = userBasic[account];
        if (basic.principal >= 0) return true;
        int256 liquidity = _baseLiquidity(basic.principal);
        uint8 n = numAssets;
        for (uint8 i = 0; i < n; i++) {
            if (!_isInAsset(basic.assetsIn, i)) continue;
            if (liquidity >= 0) return true;
            AssetInfo memory info = assetInfos[i];
            liquidity += _signed256(_mulFactor(_collateralValue(account, info), info.borrowCollateralFactor));
        }
        return liquidity >= 0;
    }

    // -- test-only mutators (governor) ----------------------------------------------------------------

    function addAsset(
        address asset,
        address priceFeed,
        uint64 scale,
        uint64 borrowCollateralFactor,
        uint64 liquidateCollateralFactor,
        uint64 liquidationFactor,
        uint128 supplyCap
    ) external onlyGovernor {
        uint8 offset = numAssets;
        if (offset >= MAX_ASSETS) revert TooManyAssets();
        if (asset == address(0) || asset == baseToken) revert BadAsset();
        for (uint8 i = 0; i < offset; i++) {
            if (assetInfos[i].asset == asset) revert BadAsset();
        }
        if (_feedDecimals(priceFeed) != PRICE_FEED_DECIMALS) revert BadDecimals();
        if (!_isPowerOfTen(scale)) revert BadScale();
        if (borrowCollateralFactor >= liquidateCollateralFactor) revert BorrowCFTooLarge();
        if (liquidateCollateralFactor > FACTOR_SCALE) revert LiquidateCFTooLarge();
        if (liquidationFactor > FACTOR_SCALE) revert LiquidationFactorTooLarge();
        assetInfos[offset] = AssetInfo({
            offset: offset,
            asset: asset,
            priceFeed: priceFeed,
            scale: scale,
            borrowCollateralFactor: borrowCollateralFactor,
            liquidateCollateralFactor: liquidateCollateralFactor,
            liquidationFactor: liquidationFactor,
            supplyCap: supplyCap
        });
        numAssets = offset + 1;
    }

    /// @notice Set the account's collateral balance of `asset`; emits SupplyCollateral for an increase and
    ///         WithdrawCollateral for a decrease (amount = the difference), and keeps `assetsIn` in step.
    function setCollateral(address account, address asset, uint128 balance) external onlyGovernor {
        AssetInfo memory info = getAssetInfoByAddress(asset);
        UserCollateral storage held = userCollateral[account][asset];
        TotalsCollateral storage totals = totalsCollateral[asset];
        uint128 previous = held.balance;
        if (balance > previous) {
            uint128 added = balance - previous;
            totals.totalSupplyAsset += added;
            if (totals.totalSupplyAsset > info.supplyCap) revert SupplyCapExceeded();
            emit SupplyCollateral(account, account, asset, added);
        } else if (balance < previous) {
            uint128 removed = previous - balance;
            totals.totalSupplyAsset -= removed;
            emit WithdrawCollateral(account, account, asset, removed);
        }
        held.balance = balance;
        uint16 flag = uint16(1) << info.offset;
        if (balance == 0) {
            userBasic[account].assetsIn &= ~flag;
        } else {
            userBasic[account].assetsIn |= flag;
        }
    }

    /// @notice Withdraw `amount` of base for the account: present value minus amount, back to a principal
    ///         (a borrow principal rounds up). Emits Withdraw(account, account, amount), as Comet does.
    function borrow(address account, uint256 amount) external onlyGovernor {
        int256 balance = _presentValue(userBasic[account].principal) - _signed256(amount);
        _setPrincipal(account, _principalValue(balance));
        emit Withdraw(account, account, amount);
    }

    /// @notice Supply `amount` of base for the account (repays a borrow first). Emits Supply(account, account, amount).
    function supply(address account, uint256 amount) external onlyGovernor {
        int256 balance = _presentValue(userBasic[account].principal) + _signed256(amount);
        _setPrincipal(account, _principalValue(balance));
        emit Supply(account, account, amount);
    }

    function setBorrowIndex(uint64 index) external onlyGovernor {
        if (index == 0) revert BadIndex();
        baseBorrowIndex = index;
    }

    function setSupplyIndex(uint64 index) external onlyGovernor {
        if (index == 0) revert BadIndex();
        baseSupplyIndex = index;
    }

    // -- price feeds (a Chainlink AggregatorV3: decimals() and latestRoundData()) ----------------------

    function _feedDecimals(address feed) internal view returns (uint8) {
        return abi.decode(_feedCall(feed, FEED_DECIMALS), (uint8));
    }

    /// @dev A static call to the feed; its revert data is passed on unchanged.
    function _feedCall(address feed, bytes4 selector) internal view returns (bytes memory) {
        if (feed.code.length == 0) revert BadPriceFeed();
        (bool ok, bytes memory data) = feed.staticcall(abi.encodeWithSelector(selector));
        if (!ok) {
            assembly {
                revert(add(data, 32), mload(data))
            }
        }
        return data;
    }

    // -- arithmetic -----------------------------------------------------------------------------------

    function _baseLiquidity(int104 principal) internal view returns (int256) {
        return _signedMulPrice(_presentValue(principal), getPrice(baseTokenPriceFeed), baseScale);
    }

    function _collateralValue(address account, AssetInfo memory info) internal view returns (uint256) {
        return _mulPrice(userCollateral[account][info.asset].balance, getPrice(info.priceFeed), info.scale);
    }

    function _setPrincipal(address account, int104 principal) internal {
        int104 previous = userBasic[account].principal;
        (uint104 oldSupply, uint104 oldBorrow) = _split(previous);
        (uint104 newSupply, uint104 newBorrow) = _split(principal);
        totalSupplyBase = totalSupplyBase - oldSupply + newSupply;
        totalBorrowBase = totalBorrowBase - oldBorrow + newBorrow;
        userBasic[account].principal = principal;
    }

    function _split(int104 principal) internal pure returns (uint104 supplied, uint104 borrowed) {
        if (principal >= 0) return (uint104(principal), 0);
        return (0, uint104(-principal));
    }

    function _presentValue(int104 principal) internal view returns (int256) {
        if (principal >= 0) return _signed256(_presentValueSupply(baseSupplyIndex, uint104(principal)));
        return -_signed256(_presentValueBorrow(baseBorrowIndex, uint104(-principal)));
    }

    function _principalValue(int256 presentValue) internal view returns (int104) {
        if (presentValue >= 0) return _signed104(_principalValueSupply(baseSupplyIndex, uint256(presentValue)));
        return -_signed104(_principalValueBorrow(baseBorrowIndex, uint256(-presentValue)));
    }

    function _presentValueSupply(uint64 index, uint104 principal) internal pure returns (uint256) {
        return (uint256(principal) * index) / BASE_INDEX_SCALE;
    }

    function _presentValueBorrow(uint64 index, uint104 principal) internal pure returns (uint256) {
        return (uint256(principal) * index) / BASE_INDEX_SCALE;
    }

    function _principalValueSupply(uint64 index, uint256 presentValue) internal pure returns (uint104) {
        return _unsigned104((presentValue * BASE_INDEX_SCALE) / index);
    }

    function _principalValueBorrow(uint64 index, uint256 presentValue) internal pure returns (uint104) {
        return _unsigned104((presentValue * BASE_INDEX_SCALE + index - 1) / index);
    }

    function _mulPrice(uint256 n, uint256 price, uint64 fromScale) internal pure returns (uint256) {
        return (n * price) / fromScale;
    }

    /// @dev Signed division truncates toward zero, so a negative value rounds up (toward zero).
    function _signedMulPrice(int256 n, uint256 price, uint256 fromScale) internal pure returns (int256) {
        return (n * _signed256(price)) / _signed256(fromScale);
    }

    function _mulFactor(uint256 n, uint256 factor) internal pure returns (uint256) {
        return (n * factor) / FACTOR_SCALE;
    }

    function _isInAsset(uint16 assetsIn, uint8 offset) internal pure returns (bool) {
        return assetsIn & (uint16(1) << offset) != 0;
    }

    function _isPowerOfTen(uint64 value) internal pure returns (bool) {
        if (value == 0) return false;
        while (value % 10 == 0) value /= 10;
        return value == 1;
    }

    function _signed104(uint104 n) internal pure returns (int104) {
        if (n > uint104(type(int104).max)) revert InvalidInt104();
        return int104(n);
    }

    function _unsigned104(uint256 n) internal pure returns (uint104) {
        if (n > type(uint104).max) revert InvalidUInt104();
        return uint104(n);
    }

    function _signed256(uint256 n) internal pure returns (int256) {
        if (n > uint256(type(int256).max)) revert InvalidInt256();
        return int256(n);
    }
}
